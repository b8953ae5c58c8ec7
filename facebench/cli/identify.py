"""`facebench identify`: 1:N identification metrics of gallery and probe embeddings."""

from __future__ import annotations

from facebench import schema

DESCRIPTION = """\
Closed-set CMC (rank 1/5/10) and open-set DIR (rank-1 TPIR) at FPIR 1e-3..1e-1 with one global
threshold, for gallery and probe embeddings (.npy from `facebench embed`, identities from their
sidecars). Probes whose identity is not enrolled are the non-mated searches. Distractor
embeddings (MegaFace-style) join the gallery as unknown identities. The faiss index comes from a
factory string; approximate indexes also report recall@1 against exact search.
Writes OUT/identification.json."""


def register(subparsers) -> None:
    import argparse

    from facebench.cli import _types as t
    from facebench.cli._faiss_args import add_faiss_device_arguments

    p = subparsers.add_parser(
        "identify",
        help="1:N identification: CMC and DIR@FPIR with faiss",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--gallery", required=True, help="gallery embeddings .npy (sidecar: ids)")
    p.add_argument("--probes", required=True, help="probe embeddings .npy (sidecar: ids)")
    p.add_argument("--distractors", action="append", help="distractor .npy (repeatable)")
    p.add_argument("--factory", default="Flat", help="faiss factory string (Flat, IVF1024,Flat)")
    p.add_argument("--search-params", help="faiss search parameters, e.g. nprobe=16")
    p.add_argument(
        "--out", type=t.path, required=True, help="output directory for identification.json"
    )
    add_faiss_device_arguments(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    import os

    import numpy as np

    from facebench.embed.io import load_embeddings
    from facebench.eval.identification import identification_metrics
    from facebench.fileio import check_output_dir, write_json
    from facebench.search.gpu import check_device
    from facebench.search.service import identities_from_sidecar

    check_device(args.device)
    check_output_dir(args.out, files=("identification.json",))
    gallery, g_meta = load_embeddings(args.gallery)
    probes, p_meta = load_embeddings(args.probes)
    distractors = None
    if args.distractors:
        distractors = np.concatenate([load_embeddings(p)[0] for p in args.distractors])
    r = identification_metrics(
        gallery,
        identities_from_sidecar(g_meta, args.gallery),
        probes,
        identities_from_sidecar(p_meta, args.probes),
        distractors=distractors,
        factory=args.factory,
        search_params=args.search_params,
        device=args.device,
        gpu_shard=args.gpu_shard,
    )
    path = write_json(os.path.join(args.out, "identification.json"), r)
    cmc = "  ".join(f"rank-{k} {100 * v:.2f}" for k, v in r[schema.CMC].items())
    dirs = "  ".join(f"DIR@{k} {100 * v:.2f}" for k, v in r.get(schema.DIR_AT_FPIR, {}).items())
    rates = "  ".join(part for part in (cmc, dirs) if part)
    print(f"{r['mated_probes']} mated / {r['non_mated_probes']} non-mated probes: {rates}")
    if r["recall_at_1_vs_exact"] is not None:
        print(f"{args.factory}: recall@1 vs exact search {r['recall_at_1_vs_exact']:.4f}")
    print(f"report: {path}")
    return 0
