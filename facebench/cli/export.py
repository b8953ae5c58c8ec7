"""`facebench export`: model.pt -> ONNX, checked with onnxruntime and insightface."""

from __future__ import annotations

DESCRIPTION = """\
Export a facebench model.pt to ONNX with a dynamic batch axis. The file takes InsightFace's
input (RGB, (x - 127.5) / 127.5, NCHW) whatever the training convention, runs in onnxruntime
and loads with insightface.model_zoo.get_model as a recognition model. Before the file is
renamed into place it is checked against PyTorch on real faces (the first images of --pack or
--bin, else the sample photos inside the insightface package, aligned): the max absolute
difference is printed, and above --tolerance nothing is written."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t

    p = subparsers.add_parser(
        "export",
        help="model.pt -> ONNX (dynamic batch), checked against PyTorch",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="facebench model artifact (model.pt)")
    p.add_argument("--onnx", type=t.path, required=True, help="output ONNX file")
    check = p.add_mutually_exclusive_group()
    check.add_argument("--pack", help="check on the first images of this pack")
    check.add_argument("--bin", help="check on the first images of this verification bin")
    p.add_argument(
        "--check-images", type=t.POSITIVE, default=16, help="how many images to check on"
    )
    p.add_argument(
        "--tolerance", type=t.real(0.0), default=1e-4, help="largest allowed float32 difference"
    )
    p.add_argument(
        "--opset",
        type=t.integer(t.MIN_OPSET, t.MAX_OPSET),
        default=17,
        help=f"ONNX opset version ({t.MIN_OPSET} to {t.MAX_OPSET})",
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    from facebench.embed.export import export_artifact
    from facebench.fileio import check_output_file

    check_output_file(args.onnx, "--onnx")
    result = export_artifact(
        args.model, args.onnx, args.pack, args.bin, args.check_images, args.tolerance, args.opset
    )
    print(
        f"onnxruntime vs PyTorch on {result['images']} real images: max abs difference "
        f"{result['max_abs_diff']:.3g} (tolerance {args.tolerance:g})"
    )
    if result["insightface"]:
        print(
            f"wrote {result['path']} (opset {result['opset']}, dynamic batch; "
            "loads with insightface.model_zoo.get_model)"
        )
        return 0
    height, width = result["convention"]["size"]
    print(f"wrote {result['path']} (opset {result['opset']}, dynamic batch; onnxruntime only)")
    print(
        f"note: insightface's model zoo cannot load it: the model takes {height}x{width} crops "
        "and the zoo takes recognition models only with square inputs of 112 px or more, a "
        f"multiple of 16. Run it with onnxruntime or `facebench embed/verify --model "
        f"{result['path']}`; for the zoo, train on such crops (112x112, the ArcFace template)."
    )
    return 0
