#!/usr/bin/python3
"""Train fraudpipe's XGBoost model from `fraudpipe features` output.

The protocol is the fraud-detection handbook's (Le Borgne et al., "Reproducible Machine
Learning for Credit Card Fraud Detection", chapters 5 and 6):

  1. train on the transactions of one week (--train-start, --train-days);
  2. skip --delay-days: the labels of those days are not yet known when the model ships;
  3. test on the following week (--test-days), day by day, dropping the cards already known
     compromised: the cards with a fraud in the training week, and on each test day those
     with a fraud on the days before it that are past the delay;
  4. measure AUC ROC, average precision and card precision@100 (per day: each card's
     highest score, the top 100 cards, cards found compromised on earlier days dropped).

It writes, into --out-dir: model.json (booster.save_model, XGBoost's JSON format, which
scorers/model evaluates natively), MODEL_CARD.md (data, features, parameters, metrics) and
parity.json (feature rows, some with missing values, with XGBoost's margins, predictions and
Saabas contributions, for the Go parity test).

Run with Debian's Python and packages (scripts/install-python-deps installs them):

  fraudpipe gen --days 140 --out gen.ndjson
  fraudpipe features --config nomodel.yaml --input gen.ndjson --out features.csv
  /usr/bin/python3 models/train/train.py --features features.csv --out-dir models/default
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

META = ["id", "ts", "card_id", "label_fraud", "label_scenario"]
DAY_MS = 86_400_000


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", required=True, help="CSV written by fraudpipe features")
    p.add_argument("--out-dir", required=True, help="folder for model.json, MODEL_CARD.md, parity.json")
    p.add_argument("--name", default=None, help="model name for the card (default: the folder's name)")
    p.add_argument("--data", default="", help="how the input was made, for the model card")
    p.add_argument("--train-start", default="2018-07-25", help="first training day, YYYY-MM-DD (UTC)")
    p.add_argument("--train-days", type=int, default=7)
    p.add_argument("--delay-days", type=int, default=7)
    p.add_argument("--test-days", type=int, default=7)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--eta", type=float, default=0.3)
    p.add_argument("--min-child-weight", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top-k", type=int, default=100, help="k of card precision@k")
    p.add_argument("--fixture-rows", type=int, default=200, help="rows in parity.json")
    p.add_argument("--no-card", action="store_true", help="do not write MODEL_CARD.md")
    p.add_argument("--grid", action="store_true",
                   help="choose max_depth, eta and trees by validation (the handbook's model selection): "
                        "each candidate is trained and tested with the same protocol shifted back by "
                        "delay + test days, so the test week is never looked at; the best average "
                        "precision wins, and overrides --depth, --eta and --trees")
    return p.parse_args(argv)


def load(path):
    df = pd.read_csv(path, dtype={"id": str, "ts": str, "card_id": str, "label_scenario": str},
                     keep_default_na=False, na_values={"label_fraud": [""]})
    if df.empty:
        sys.exit(f"{path}: no rows")
    if df["label_fraud"].isna().any():
        sys.exit(f"{path}: {int(df['label_fraud'].isna().sum())} rows have no label: train on a labelled stream")
    ts = pd.to_datetime(df["ts"], utc=True)
    df["ts_ms"] = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    df["day"] = df["ts_ms"] // DAY_MS  # days since 1970-01-01 (UTC)
    df["label_fraud"] = df["label_fraud"].astype(int)
    return df


def split(df, start, train_days, delay_days, test_days):
    """The handbook's get_train_test_set, with cards for customers."""
    d0 = int(pd.Timestamp(start, tz="UTC").value // 10**6 // DAY_MS)
    train = df[(df.day >= d0) & (df.day < d0 + train_days)]
    known = set(train.loc[train.label_fraud == 1, "card_id"])
    parts = []
    for day in range(test_days):
        test_day = df[df.day == d0 + train_days + delay_days + day]
        # Frauds of the day that is `delay` before this test day are known by now.
        seen = df[df.day == d0 + train_days + day - 1]
        known |= set(seen.loc[seen.label_fraud == 1, "card_id"])
        parts.append(test_day[~test_day.card_id.isin(known)])
    test = pd.concat(parts)
    return train, test


def card_precision_top_k(days, cards, labels, scores, k):
    """The handbook's card_precision_top_k: the mean over days of the share of compromised
    cards among the k cards with the highest score that day (each card's maximum; a card
    is compromised that day when one of its transactions is fraud); cards found on earlier
    days are dropped. Ties are broken by card id, for a deterministic result."""
    frame = pd.DataFrame({"day": days, "card": cards, "label": labels, "score": scores})
    detected = set()
    per_day = []
    for day in sorted(frame.day.unique()):
        d = frame[(frame.day == day) & ~frame.card.isin(detected)]
        g = d.groupby("card").agg(score=("score", "max"), label=("label", "max")).reset_index()
        g = g.sort_values(["score", "card"], ascending=[False, True], kind="mergesort").head(k)
        found = list(g.loc[g.label == 1, "card"])
        per_day.append(len(found) / k)
        detected.update(found)
    return float(np.mean(per_day)), per_day


def metrics(test, scores, k):
    y = test.label_fraud.to_numpy()
    cp, per_day = card_precision_top_k(test.day.to_numpy(), test.card_id.to_numpy(), y, scores, k)
    return {
        "auc_roc": float(roc_auc_score(y, scores)),
        "average_precision": float(average_precision_score(y, scores)),
        f"card_precision@{k}": cp,
        f"card_precision@{k}_per_day": per_day,
    }


def by_scenario(test, scores):
    """Per fraud scenario: its frauds in the test set, their AUC against the genuine
    transactions, and how many score 0.5 or more."""
    genuine = scores[test.label_fraud.to_numpy() == 0]
    rows = []
    for sc in sorted(set(test.loc[test.label_fraud == 1, "label_scenario"])):
        s = scores[((test.label_fraud == 1) & (test.label_scenario == sc)).to_numpy()]
        y = np.r_[np.ones(len(s)), np.zeros(len(genuine))]
        rows.append((sc, len(s), float(roc_auc_score(y, np.r_[s, genuine])), int((s >= 0.5).sum())))
    return rows


def parity_rows(test, features, n, seed):
    """Test rows for the parity fixture; a fifth of them get missing values (NaN), so the
    fixture exercises XGBoost's default directions."""
    rng = np.random.default_rng(seed)
    n = min(n, len(test))
    # Take frauds and non-frauds both, so both ends of the score range are covered.
    fraud = test[test.label_fraud == 1]
    rows = pd.concat([fraud.sample(min(len(fraud), n // 4), random_state=seed),
                      test.sample(n - min(len(fraud), n // 4), random_state=seed)])
    x = rows[features].to_numpy(dtype=np.float64).copy()
    for i in range(0, len(x), 5):
        x[i, rng.integers(0, len(features), size=3)] = np.nan
    return x


def write_fixture(path, bst, features, x):
    d = xgb.DMatrix(x, feature_names=features, missing=np.nan)
    margins = bst.predict(d, output_margin=True)
    preds = bst.predict(d)
    contribs = bst.predict(d, pred_contribs=True, approx_contribs=True)

    def num(v):
        v = float(v)
        return None if math.isnan(v) else v

    fixture = {
        "features": features,
        "rows": [[num(v) for v in row] for row in x],
        "margins": [float(m) for m in margins],
        "predictions": [float(p) for p in preds],
        # One row per input row: each feature's contribution, then the bias (XGBoost's layout).
        "saabas": [[float(c) for c in row] for row in contribs],
    }
    with open(path, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")


def model_card(path, name, args, df, train, test, features, params, m, importance, xgb_version, selection=None):
    def period(frame):
        return f"{frame.ts.min()} to {frame.ts.max()}"

    k = args.top_k
    lines = [
        f"# Model card: {name}",
        "",
        "An XGBoost binary classifier (objective binary:logistic) that gives each card payment a",
        "fraud probability. fraudpipe evaluates it natively in Go (scorers/model); it was trained",
        "by models/train/train.py on features computed by `fraudpipe features`, the engine code",
        "that serves them.",
        "",
        "## Data",
        "",
        f"- Source: {args.data or args.features}",
        f"- All rows: {len(df)} transactions, {int(df.label_fraud.sum())} fraud "
        f"({100 * df.label_fraud.mean():.2f}%), {period(df)}",
        f"- Training: {args.train_days} days from {args.train_start}: {len(train)} transactions, "
        f"{int(train.label_fraud.sum())} fraud ({period(train)})",
        f"- Delay: {args.delay_days} days skipped (labels not yet known when the model ships)",
        f"- Test: the next {args.test_days} days, cards already known compromised dropped: "
        f"{len(test)} transactions, {int(test.label_fraud.sum())} fraud ({period(test)})",
        "",
        "## Features",
        "",
        "In the model's order (the engine matches them by name); gain is XGBoost's total gain:",
        "",
        "| feature | total gain |",
        "|---|---|",
    ]
    for f in features:
        lines.append(f"| `{f}` | {importance.get(f, 0.0):.1f} |")
    lines += [
        "",
        "## Parameters",
        "",
        f"- XGBoost {xgb_version}, {args.trees} trees (boosting rounds)",
    ]
    for key in sorted(params):
        lines.append(f"- `{key}`: {params[key]}")
    lines += [
        "",
        "## Metrics (test week)",
        "",
        "| metric | this model | handbook XGBoost baseline | handbook tuned |",
        "|---|---|---|---|",
        f"| AUC ROC | {m['auc_roc']:.3f} | 0.862 | 0.869 |",
        f"| average precision | {m['average_precision']:.3f} | 0.639 | 0.687 |",
        f"| card precision@{k} | {m[f'card_precision@{k}']:.3f} | 0.273 | 0.303 |",
        "",
        f"Card precision@{k} per test day: "
        + ", ".join(f"{v:.2f}" for v in m[f"card_precision@{k}_per_day"]) + ".",
        "",
        "By fraud scenario (label_scenario), on the test week:",
        "",
        "| scenario | frauds | AUC against genuine | score >= 0.5 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {sc} | {n} | {auc:.3f} | {hit} |" for sc, n, auc, hit in m["by_scenario"]]
    if selection:
        k_key = f"card_precision@{k}"
        lines += [
            "",
            "## Model selection",
            "",
            "Chosen by validation (`--grid`): each candidate was trained and tested with the same",
            "protocol shifted back by the delay and test days, so the test week above was never",
            "looked at; the best average precision won.",
            "",
            f"| max_depth | eta | trees | AUC ROC | average precision | card precision@{k} |",
            "|---|---|---|---|---|---|",
        ]
        for r in selection["candidates"]:
            mark = " (chosen)" if r == selection["chosen"] else ""
            lines.append(f"| {r['max_depth']} | {r['eta']} | {r['trees']}{mark} | {r['auc_roc']:.3f} | "
                         f"{r['average_precision']:.3f} | {r[k_key]:.3f} |")
    lines += [
        "",
        "The terminal features (`terminal_count_*`, `terminal_risk_*`) come from feedback:",
        "`fraudpipe features --feedback-from-labels 168h` simulates fraud confirmed a week after",
        "each fraudulent payment, the handbook's assumption. In production they read the",
        "feedback stream (docs/models.md).",
        "",
        "Reproduce: see docs/models.md, \"The training loop\".",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


GRID = [(depth, eta, trees) for depth in (3, 6, 9) for eta in (0.1, 0.3) for trees in (50, 100)]


def select(df, features, args, base):
    """The handbook's validation: the same train/delay/test protocol, ending where the
    real training week begins, so the chosen parameters never saw the test week."""
    start = pd.Timestamp(args.train_start, tz="UTC") - pd.Timedelta(days=args.delay_days + args.test_days)
    train, valid = split(df, start.strftime("%Y-%m-%d"), args.train_days, args.delay_days, args.test_days)
    if train.empty or valid.empty or train.label_fraud.nunique() < 2:
        sys.exit("--grid: the data has no validation period before the training week; generate more days")
    dtrain = xgb.DMatrix(train[features].to_numpy(dtype=np.float64), label=train.label_fraud.to_numpy(),
                         feature_names=features, missing=np.nan)
    dvalid = xgb.DMatrix(valid[features].to_numpy(dtype=np.float64), feature_names=features, missing=np.nan)
    results = []
    for depth, eta, trees in GRID:
        params = dict(base, max_depth=depth, eta=eta)
        scores = xgb.train(params, dtrain, num_boost_round=trees).predict(dvalid)
        m = metrics(valid, scores, args.top_k)
        results.append({"max_depth": depth, "eta": eta, "trees": trees, "auc_roc": m["auc_roc"],
                        "average_precision": m["average_precision"],
                        f"card_precision@{args.top_k}": m[f"card_precision@{args.top_k}"]})
        print(f"validation: depth {depth} eta {eta} trees {trees}: AUC {m['auc_roc']:.4f} "
              f"AP {m['average_precision']:.4f} CP@{args.top_k} {m[f'card_precision@{args.top_k}']:.4f}",
              file=sys.stderr)
    best = max(results, key=lambda r: r["average_precision"])
    return best, results


def main(argv):
    args = parse_args(argv)
    name = args.name or os.path.basename(os.path.normpath(args.out_dir))
    df = load(args.features)
    features = [c for c in df.columns if c not in META + ["ts_ms", "day"]]
    train, test = split(df, args.train_start, args.train_days, args.delay_days, args.test_days)
    if train.empty or test.empty:
        sys.exit(f"no training or test rows: the data covers {df.ts.min()} to {df.ts.max()}, "
                 f"the protocol needs {args.train_start} plus "
                 f"{args.train_days + args.delay_days + args.test_days} days")
    if train.label_fraud.nunique() < 2:
        sys.exit("the training week has only one class")
    params = {
        "objective": "binary:logistic",
        "max_depth": args.depth,
        "eta": args.eta,
        "min_child_weight": args.min_child_weight,
        "seed": args.seed,
        "nthread": args.threads,
        "tree_method": "exact",
        "eval_metric": "auc",
    }
    selection = None
    if args.grid:
        best, results = select(df, features, args, params)
        args.depth, args.eta, args.trees = best["max_depth"], best["eta"], best["trees"]
        params.update(max_depth=args.depth, eta=args.eta)
        selection = {"chosen": best, "candidates": results}
    params["trees"] = args.trees
    dtrain = xgb.DMatrix(train[features].to_numpy(dtype=np.float64), label=train.label_fraud.to_numpy(),
                         feature_names=features, missing=np.nan)
    bst = xgb.train({k: v for k, v in params.items() if k != "trees"}, dtrain, num_boost_round=args.trees)
    dtest = xgb.DMatrix(test[features].to_numpy(dtype=np.float64), feature_names=features, missing=np.nan)
    scores = bst.predict(dtest)
    m = metrics(test, scores, args.top_k)
    m["by_scenario"] = by_scenario(test, scores)

    os.makedirs(args.out_dir, exist_ok=True)
    bst.save_model(os.path.join(args.out_dir, "model.json"))
    write_fixture(os.path.join(args.out_dir, "parity.json"), bst, features,
                  parity_rows(test, features, args.fixture_rows, args.seed))
    if not args.no_card:
        importance = bst.get_score(importance_type="total_gain")
        model_card(os.path.join(args.out_dir, "MODEL_CARD.md"), name, args, df, train, test, features,
                   params, m, importance, xgb.__version__, selection)
    summary = {k: v for k, v in m.items() if not k.endswith("_per_day") and k != "by_scenario"}
    summary.update({"train_rows": len(train), "test_rows": len(test), "features": len(features)})
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
