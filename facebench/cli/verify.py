"""`facebench verify`: verification bins -> one JSON report per bin and a transfer table."""

from __future__ import annotations

DESCRIPTION = """\
Score verification bins (lfw.bin, cfp_fp.bin, ...) with a model or precomputed embeddings.
Writes OUT/<bin>.json per bin (standard 10-fold accuracy and VAL@FAR=1e-3, the exact oracle
global threshold in cosine, EER, AUC, TAR@FAR) and OUT/transfer.json (thresholds chosen on each
bin applied to every other bin)."""


def add_model_arguments(parser, required: bool = True) -> None:
    """--model, --device, --batch-size, --precision and the ONNX input-convention options."""
    parser.add_argument(
        "--model", required=required, help="facebench model.pt or an ONNX face recognition model"
    )
    parser.add_argument("--device", default="cpu", help="torch/onnxruntime device (cpu, cuda)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast dtype"
    )
    conv = parser.add_argument_group("ONNX input convention (default: detected from the model)")
    conv.add_argument("--color", choices=("RGB", "BGR"), help="channel order the model expects")
    conv.add_argument("--mean", type=float, help="subtracted from 0..255 pixels")
    conv.add_argument("--std", type=float, help="divides after the mean")
    conv.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input size")


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


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser(
        "verify",
        help="verification bins -> JSON reports (10-fold, global threshold, TAR@FAR)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p, required=False)
    p.add_argument(
        "--embeddings",
        action="append",
        help="precomputed (2P, d) .npy in the bin's image order, one per --bin (not with --model)",
    )
    p.add_argument("--bin", action="append", required=True, help="verification bin (repeatable)")
    p.add_argument("--out", required=True, help="output directory for the JSON reports")
    p.add_argument(
        "--target-far", type=float, default=1e-3, help="FAR of the transfer table's threshold"
    )
    p.add_argument("--name", help="model name written into the reports")
    p.set_defaults(handler=run)


def run(args) -> int:
    from facebench.errors import ConfigError
    from facebench.eval.verify_bins import verify_bins

    if (args.model is None) == (args.embeddings is None):
        raise ConfigError("verify: give exactly one of --model or --embeddings")
    embedder = embedder_from_args(args) if args.model else None
    reports = verify_bins(
        args.bin,
        args.out,
        embedder=embedder,
        embedding_paths=args.embeddings,
        batch_size=args.batch_size,
        target_far=args.target_far,
        model_name=args.name,
    )
    for name, r in reports.items():
        print(
            f"{name}: 10-fold {100 * r['accuracy_10fold_mean']:.2f} +- "
            f"{100 * r['accuracy_10fold_std']:.2f}  global {100 * r['global_accuracy']:.2f} "
            f"(cos > {r['global_threshold']:.4f})  EER {100 * r['eer']:.2f}  AUC {r['auc']:.4f}"
        )
    print(f"reports in {args.out}")
    return 0
