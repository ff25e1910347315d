#!/usr/bin/python3
"""Executes notebooks with Jupyter's nbclient on the .net-csharp kernelspec found on JUPYTER_PATH.

Usage: nbclient_run.py --timeout SECONDS --out DIR NOTEBOOK.ipynb...
Each notebook runs on a fresh kernel started in the notebook's folder (as JupyterLab starts it) and stops at its
first failing cell. Writes DIR/NAME.ipynb (executed) and prints one JSON line:
{"results": [{"notebook", "ok", "kind": ok|error|timeout|dead, "cell": 0-based index or null, "text", "executed"}]}
where "text" holds everything the failing cell showed (stderr, ename, evalue, traceback).
"""
import json
import os
import sys

import nbclient
import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError


def cell_text(cell):
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif o.get("output_type") == "error":
            parts.append(o.get("ename", "") + ": " + o.get("evalue", ""))
            parts.extend(o.get("traceback", []))
        else:
            for v in o.get("data", {}).values():
                parts.append(v if isinstance(v, str) else json.dumps(v))
    return "\n".join(parts)


def run(path, timeout, out_dir):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="", allow_errors=False,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    result = {"notebook": os.path.abspath(path), "ok": True, "kind": "ok", "cell": None, "text": ""}
    failing = None
    try:
        client.execute()
    except CellTimeoutError as e:
        result.update(ok=False, kind="timeout", text=str(e))
    except DeadKernelError as e:
        result.update(ok=False, kind="dead", text=str(e))
    except CellExecutionError as e:
        result.update(ok=False, kind="error", text=str(e))
    if not result["ok"]:
        # The failing cell: the last code cell that ran (it has an execution count or outputs).
        ran = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.get("execution_count") or c.get("outputs"))]
        failing = ran[-1] if ran else None
        result["cell"] = failing
        if failing is not None:
            result["text"] = cell_text(nb.cells[failing]) + "\n" + result["text"]
    target = os.path.join(out_dir, os.path.basename(path))
    nbformat.write(nb, target)
    result["executed"] = target
    return result


def main(argv):
    timeout, out_dir, paths = 600, ".", []
    i = 0
    while i < len(argv):
        if argv[i] == "--timeout":
            timeout = int(argv[i + 1]); i += 2
        elif argv[i] == "--out":
            out_dir = argv[i + 1]; i += 2
        else:
            paths.append(argv[i]); i += 1
    os.makedirs(out_dir, exist_ok=True)
    results = [run(p, timeout, out_dir) for p in paths]
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
