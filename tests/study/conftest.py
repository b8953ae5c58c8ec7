"""The face studies' tiny synthetic set, shared by the tests of tests/study."""

import pytest

from facebench.data.synth.dataset import SynthConfig, write_synthetic_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """4 identities x 6 images (+2 held out in test.rec), 32x32, bins of 4 other identities."""
    out = tmp_path_factory.mktemp("faces") / "synth"
    config = SynthConfig(
        identities=4,
        images_per_identity=6,
        test_images_per_identity=2,
        val_identities=4,
        val_images_per_identity=2,
        pairs=20,
        image_size=32,
    )
    write_synthetic_dataset(str(out), config, progress=False)
    return out
