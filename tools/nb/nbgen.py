#!/usr/bin/env python3
"""Builds a Polyglot (.NET Interactive) C# notebook from a plain text source.

Source format: cells separated by lines '#%% md' or '#%% code'. Writes nbformat 4.5 JSON with the
kernelspec and metadata the Workbook notebooks use, no outputs. Usage: nbgen.py SOURCE.txt OUT.ipynb
"""
import json, sys, hashlib

def build(text):
    cells, kind, buf = [], None, []
    def flush():
        if kind is None: return
        src = "\n".join(buf).strip("\n")
        lines = [l + "\n" for l in src.split("\n")]
        if lines: lines[-1] = lines[-1][:-1]
        cid = hashlib.sha1((str(len(cells)) + src).encode()).hexdigest()[:8]
        if kind == "md":
            cells.append({"cell_type": "markdown", "id": cid, "metadata": {}, "source": lines})
        else:
            cells.append({"cell_type": "code", "execution_count": None, "id": cid,
                          "metadata": {"dotnet_interactive": {"language": "csharp"}, "polyglot_notebook": {"kernelName": "csharp"}},
                          "outputs": [], "source": lines})
    for line in text.split("\n"):
        if line.startswith("#%% "):
            flush(); kind = "md" if line[4:].strip() == "md" else "code"; buf = []
        else:
            buf.append(line)
    flush()
    return {"cells": cells, "metadata": {
        "kernelspec": {"display_name": ".NET (C#)", "language": "C#", "name": ".net-csharp"},
        "language_info": {"file_extension": ".cs", "mimetype": "text/x-csharp", "name": "C#", "pygments_lexer": "csharp", "version": "12.0"},
        "polyglot_notebook": {"kernelInfo": {"defaultKernelName": "csharp", "items": [{"aliases": [], "name": "csharp"}]}}},
        "nbformat": 4, "nbformat_minor": 5}

if __name__ == "__main__":
    nb = build(open(sys.argv[1], encoding="utf-8").read())
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False); f.write("\n")
