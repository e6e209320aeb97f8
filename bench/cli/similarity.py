"""`python -m bench similarity`: correlate S^pixel with S^neural-pred on a regularization set
(`regularizers.analysis` computes; this writes the figure and the JSON summary)."""
from __future__ import annotations

import json
from pathlib import Path


def cmd_similarity(args) -> int:
    from bench.core import store
    from bench.core.outputs import check_output
    from regularizers.analysis import similarity_figure, similarity_report
    check_output(args.out, option="--out", folder=True)  # not inside a record, not a file: before the work
    summary, S_pix, S_neu = similarity_report(args.reg_dataset, args.n_images, color=args.color,
                                              image_size=args.image_size, reg_augment=args.reg_augment,
                                              th=args.th, response_model=args.response_model,
                                              data_dir=args.data_dir, seed=args.seed)
    out = Path(args.out)
    name = f"similarity-{args.reg_dataset.replace(':', '_').replace('/', '_')}-n{summary['n_images']}"
    paths = similarity_figure(S_pix, S_neu, summary, out / name)
    summary["figures"] = [str(p) for p in paths]
    store.atomic_write_json(out / f"{name}.json", summary)
    print(f"{summary['n_images']} images ({summary['pairs']} pairs) of {args.reg_dataset}, "
          f"response model {summary['response_model'].get('name')}")
    print(f"  Pearson  r   = {summary['pearson']:.4f}")
    print(f"  Spearman rho = {summary['spearman']:.4f}")
    for key in ("pixel", "neural_pred"):
        s = summary[key]
        print(f"  {key:<11} mean {s['mean']:+.3f} sd {s['std']:.3f}; pairs with |S| > {args.th}: "
              f"{100 * s['pass']:.3f}% (> th {100 * s['above_th']:.3f}%, < -th {100 * s['below_minus_th']:.3f}%)")
    print(f"  wrote {out / (name + '.json')}, " + ", ".join(str(p) for p in paths))
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
