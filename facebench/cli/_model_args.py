"""Model options shared by the commands that embed images (verify, embed, ijb)."""

from __future__ import annotations


def add_model_arguments(parser, required: bool = True) -> None:
    """--model, --device, --batch-size, --precision and the ONNX input-convention options."""
    from facebench.cli import _types as t
    from facebench.cli._options import Once

    parser.add_argument(
        "--model", required=required, help="facebench model.pt or an ONNX face recognition model"
    )
    parser.add_argument("--device", default="cpu", help="torch/onnxruntime device (cpu, cuda)")
    parser.add_argument("--batch-size", type=t.POSITIVE, default=64, help="images per forward pass")
    parser.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast dtype"
    )
    conv = parser.add_argument_group("ONNX input convention (default: detected from the model)")
    conv.add_argument("--color", choices=("RGB", "BGR"), help="channel order the model expects")
    conv.add_argument("--mean", type=t.real(), help="subtracted from 0..255 pixels")
    conv.add_argument("--std", type=t.POSITIVE_REAL, help="divides after the mean")
    conv.add_argument(
        "--size",
        type=t.integer(1, t.MAX_INPUT_SIZE),
        nargs=2,
        action=Once,
        metavar=("H", "W"),
        help="input size",
    )


def embedder_from_args(args):
    """The embedder that the --model options describe."""
    from facebench.embed import load_embedder
    from facebench.errors import ConfigError

    overrides = (args.color, args.mean, args.std, args.size)
    convention = None
    if any(v is not None for v in overrides):
        if not args.model.endswith(".onnx"):
            raise ConfigError(
                f"{args.model}: --color/--mean/--std/--size apply to ONNX models; "
                "a model.pt stores its own input convention"
            )
        from facebench.embed.onnx_convention import detect_onnx_convention

        convention = detect_onnx_convention(args.model, *overrides)
    return load_embedder(args.model, args.device, convention, args.precision)
