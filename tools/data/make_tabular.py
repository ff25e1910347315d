#!/usr/bin/env python3
"""Copies the tabular datasets into data/tabular/ as CSVs with a proper header row.

The shared copies (scikit-learn's bundled files) start with a line "rows,features,class names..." instead of a
header. This writes the same numbers under a header of feature names (scikit-learn's names, taken from the
.rst descriptions in data/tabular/) plus a "target" column (the class index) and a "class" column (the class name).
Usage: python3 tools/data/make_tabular.py [SOURCE_DIR] (default ../shared/data/tabular, relative to the repo root).
"""
import csv, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data", "tabular")
DST = os.path.join(ROOT, "data", "tabular")

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
WINE = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
        "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280/od315_of_diluted_wines", "proline"]
BASE = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave points",
        "symmetry", "fractal dimension"]
# breast_cancer.rst: "field 0 is Mean Radius, field 10 is Radius SE, field 20 is Worst Radius".
CANCER = [f"mean {b}" for b in BASE] + [f"{b} error" for b in BASE] + [f"worst {b}" for b in BASE]

def convert(name, features):
    with open(os.path.join(SRC, name + ".csv"), newline="") as f:
        rows = list(csv.reader(f))
    n, d, classes = int(rows[0][0]), int(rows[0][1]), rows[0][2:]
    body = rows[1:]
    assert d == len(features), f"{name}: first line says {d} features, names list has {len(features)}"
    assert n == len(body), f"{name}: first line says {n} rows, file has {len(body)}"
    with open(os.path.join(DST, name + ".csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(features + ["target", "class"])
        for r in body:
            assert len(r) == d + 1, f"{name}: row has {len(r)} fields, expected {d + 1}"
            w.writerow(r[:d] + [r[d], classes[int(r[d])]])
    print(f"data/tabular/{name}.csv: {n} rows, {d} features, classes {classes}")

os.makedirs(DST, exist_ok=True)
convert("iris", IRIS)
convert("wine_data", WINE)
convert("breast_cancer", CANCER)
