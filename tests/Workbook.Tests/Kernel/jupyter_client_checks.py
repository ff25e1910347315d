#!/usr/bin/python3
"""Drives the Workbook Jupyter kernel with Jupyter's own client libraries (Debian's python3-jupyter-client and
python3-nbclient): none of this client code is ours, so it checks the kernel against the protocol as Jupyter speaks it.

Usage: jupyter_client_checks.py --kernel-dll DLL --repo ROOT --work DIR --mode notebooks|protocol

The kernelspec is installed with the kernel's own `install --prefix DIR/prefix` and found through JUPYTER_PATH.
Each check prints one line, `CHECK <name> PASS` or `CHECK <name> FAIL: <why>`; the xunit test
(KernelJupyterClientTests) requires every expected check to PASS. Exit code: 0 all passed, 1 a check failed,
2 setup failed.
"""
import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import time
import traceback

RESULTS = []


def check(name, fn):
    """Runs one check; an AssertionError or any exception is a FAIL with its message."""
    started = time.time()
    try:
        fn()
        RESULTS.append((name, True))
        print(f"CHECK {name} PASS ({time.time() - started:.1f}s)", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
        RESULTS.append((name, False))
        detail = f"{type(e).__name__}: {e}".replace("\n", " | ")
        print(f"CHECK {name} FAIL: {detail}", flush=True)
        traceback.print_exc(file=sys.stdout)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def install_kernelspec(args):
    prefix = os.path.join(args.work, "prefix")
    out = subprocess.run(["dotnet", args.kernel_dll, "install", "--prefix", prefix], capture_output=True, text=True, timeout=120)
    expect(out.returncode == 0, f"install exited {out.returncode}: {out.stdout} {out.stderr}")
    spec_dir = os.path.join(prefix, "share", "jupyter", "kernels", ".net-csharp")
    with open(os.path.join(spec_dir, "kernel.json")) as f:
        spec = json.load(f)
    expect(spec["argv"][1] == args.kernel_dll and spec["argv"][2] == "{connection_file}", f"kernel.json argv is {spec['argv']}")
    # Only our prefix: a user's own .net-csharp (Polyglot) must not be picked up instead.
    os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share", "jupyter")
    os.environ["JUPYTER_DATA_DIR"] = os.path.join(args.work, "jupyter-data")
    os.environ["WORKBOOK_PROFILE"] = "Quick"
    from jupyter_client.kernelspec import KernelSpecManager
    found = KernelSpecManager().get_kernel_spec(".net-csharp")
    expect(os.path.realpath(found.resource_dir) == os.path.realpath(spec_dir), f"Jupyter resolved .net-csharp to {found.resource_dir}, not {spec_dir}")


# ---------------------------------------------------------------- notebooks through nbclient

def run_notebook(path, args, name, extra_setup=None):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    if extra_setup:
        extra_setup(nb)
    expect(nb.metadata["kernelspec"]["name"] == ".net-csharp", f"{path} has kernelspec {nb.metadata['kernelspec']}")
    with open(os.path.join(args.work, f"kernel-{name}.log"), "w") as log:
        client = NotebookClient(nb, timeout=600, startup_timeout=120, kernel_name=nb.metadata["kernelspec"]["name"],
                                resources={"metadata": {"path": os.path.dirname(path)}})
        client.execute(stderr=log)  # raises CellExecutionError on an error output
    nbformat.write(nb, os.path.join(args.work, f"executed-{name}.ipynb"))
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    expect(counts == list(range(1, len(code) + 1)), f"execution counts {counts}")
    for c in code:
        for o in c.outputs:
            expect(o.output_type != "error", f"cell {c.execution_count} has an error: {o.get('ename')}: {o.get('evalue')}")
    return code


def text(output, mime="text/plain"):
    value = output.get("data", {}).get(mime, "")
    return "".join(value) if isinstance(value, list) else value


def cell_with(code_cells, fragment):
    for c in code_cells:
        if fragment in c.source:
            return c
    raise AssertionError(f"no code cell contains {fragment!r}")


def check_notebook_00(args):
    path = os.path.join(args.repo, "notebooks", "00-tour.ipynb")
    code = run_notebook(path, args, "00")
    setup = cell_with(code, "Notebook.Setup(seed: 42)")
    expect("TorchSharp 0.107.0" in text(setup.outputs[-1]) and "seed 42" in text(setup.outputs[-1]), f"setup output {text(setup.outputs[-1])!r}")
    expect(text(cell_with(code, "Notebook.Pick").outputs[-1]) == "Quick: 1 epoch(s)", "profile cell")
    tensor = text(cell_with(code, "torch.arange(12").outputs[-1])
    expect("[3, 4]" in tensor and "Float32" in tensor, f"tensor summary {tensor!r}")
    sums = text(cell_with(code, "colSums").outputs[-1])
    expect(sums == "column sums 12, 15, 18, 21; by hand 12, 15, 18, 21", f"column sums {sums!r}")
    chart = cell_with(code, "Plot.Lines").outputs[-1]
    expect(chart.output_type == "execute_result" and "plotly" in text(chart, "text/html").lower(), "chart is not Plotly HTML")
    table = cell_with(code, "new DataFrame(").outputs[-1]
    html = text(table, "text/html")
    expect("<table" in html and "sigmoid" in html, "DataFrame is not an HTML table")
    live = cell_with(code, "display(\"starting")
    displays = [o for o in live.outputs if o.output_type == "display_data"]
    # nbclient applied the update_display_data messages (matched by transient display_id) to the display output.
    expect(len(displays) == 1 and text(displays[0]) == "step 50/50, loss 0.067", f"live display shows {[text(d) for d in displays]}")


def check_notebook_01(args):
    path = os.path.join(args.repo, "notebooks", "01-attention.ipynb")
    code = run_notebook(path, args, "01")
    rich = [o for c in code for o in c.outputs if o.output_type in ("execute_result", "display_data")]
    expect(len(rich) >= 3, f"only {len(rich)} displayed results in 01-attention")
    charts = [o for o in rich if "plotly" in text(o, "text/html").lower()]
    expect(len(charts) >= 1, "01-attention shows no Plotly chart")


def check_fixture(args):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel-fixture.ipynb")
    dependency = os.path.join(os.path.dirname(args.kernel_dll), "AsyncIO.dll")

    def with_dll(nb):
        for c in nb.cells:
            c.source = c.source.replace("ASSEMBLY_PATH", dependency)
    code = run_notebook(path, args, "fixture", with_dll)
    streams = cell_with(code, "Console.Error").outputs
    expect([(o.output_type, o.get("name"), o.get("text")) for o in streams] ==
           [("stream", "stdout", "to stdout\n"), ("stream", "stderr", "to stderr\n")], f"streams {streams}")
    expect(text(cell_with(code, "n * 7").outputs[-1]) == "42", "state across cells")
    expect(text(cell_with(code, "typeof(AsyncIO").outputs[-1]) == "AsyncIO", "#r of a dll path")
    html = cell_with(code, "HTML(").outputs[-1]
    expect(text(html, "text/html") == "<b>bold</b>", f"HTML output {html}")
    shown = [o for o in cell_with(code, "var handle = display(").outputs if o.output_type == "display_data"]
    # The update comes from a later cell; nbclient finds the display by its id.
    expect(len(shown) == 1 and text(shown[0]) == "updated by a later cell", f"display {[text(s) for s in shown]}")


def check_replaces_and_restores(args):
    """A Polyglot kernelspec of the same name is kept aside by install and comes back with uninstall."""
    prefix = os.path.join(args.work, "polyglot-prefix")
    spec_dir = os.path.join(prefix, "share", "jupyter", "kernels", ".net-csharp")
    os.makedirs(spec_dir)
    polyglot = {"argv": ["dotnet", "interactive", "jupyter", "--default-kernel", "csharp", "{connection_file}"],
                "display_name": ".NET (C#)", "language": "C#"}
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump(polyglot, f)

    def kernel(*extra):
        out = subprocess.run(["dotnet", args.kernel_dll, *extra, "--prefix", prefix], capture_output=True, text=True, timeout=120)
        expect(out.returncode == 0, f"{extra} exited {out.returncode}: {out.stdout} {out.stderr}")
        return out.stdout
    said = kernel("install")
    expect("already installed" in said, f"install did not mention the replaced kernelspec: {said!r}")
    with open(os.path.join(spec_dir, "kernel.json")) as f:
        expect(json.load(f)["argv"][1] == args.kernel_dll, "ours is not installed")
    kernel("install", "--name", "workbook-csharp")
    with open(os.path.join(prefix, "share", "jupyter", "kernels", "workbook-csharp", "kernel.json")) as f:
        expect(json.load(f)["argv"][1] == args.kernel_dll, "--name did not install beside it")
    kernel("uninstall")
    with open(os.path.join(spec_dir, "kernel.json")) as f:
        expect(json.load(f) == polyglot, "uninstall did not restore the replaced kernelspec")


# ---------------------------------------------------------------- protocol through jupyter_client

class Kernel:
    def __init__(self, args):
        from jupyter_client.manager import start_new_kernel
        self.log_path = os.path.join(args.work, "kernel-protocol.log")
        self.log = open(self.log_path, "w")
        self.km, self.kc = start_new_kernel(kernel_name=".net-csharp", startup_timeout=120, stderr=self.log)

    def pid(self):
        return self.km.provisioner.process.pid

    def execute(self, code, timeout=120):
        """Runs code; returns (reply content, iopub messages of this request up to status idle)."""
        msg_id = self.kc.execute(code)
        return self.collect(msg_id, timeout)

    def collect(self, msg_id, timeout=120):
        deadline = time.time() + timeout
        outputs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.time()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            outputs.append(msg)
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.time()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"], outputs

    def request(self, send):
        msg_id = send()
        while True:
            reply = self.kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    def log_text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()


def results(outputs, msg_type):
    return [m["content"] for m in outputs if m["msg_type"] == msg_type]


def wait_until_running(kernel, msg_id):
    """Waits for the execute_input of msg_id, then a moment, so the interrupt hits a running loop."""
    deadline = time.time() + 60
    while time.time() < deadline:
        msg = kernel.kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            time.sleep(1.5)
            return
    raise AssertionError("the cell never started")


def protocol_checks(args):
    kernel = Kernel(args)
    kc = kernel.kc
    try:
        def heartbeat():
            import zmq
            ctx = zmq.Context.instance()
            s = ctx.socket(zmq.REQ)
            s.linger = 0
            s.connect(f"{kc.transport}://{kc.ip}:{kc.hb_port}")
            s.send(b"ping-workbook")
            expect(s.poll(5000), "no heartbeat echo in 5 s")
            expect(s.recv() == b"ping-workbook", "heartbeat echoed something else")
            s.close()
        check("heartbeat", heartbeat)

        def kernel_info():
            info = kernel.request(kc.kernel_info)
            expect(info["status"] == "ok" and info["protocol_version"] == "5.3", f"kernel_info {info}")
            expect(info["language_info"]["name"] == "C#" and info["language_info"]["file_extension"] == ".cs", f"language_info {info['language_info']}")
        check("kernel_info", kernel_info)

        def execute_outputs():
            reply, out = kernel.execute('var answer = 41;\nConsole.WriteLine("hello");\nanswer + 1')
            expect(reply["status"] == "ok", f"reply {reply}")
            expect([o["code"] for o in results(out, "execute_input")] == ['var answer = 41;\nConsole.WriteLine("hello");\nanswer + 1'], "execute_input")
            expect([o["text"] for o in results(out, "stream")] == ["hello\n"], f"streams {results(out, 'stream')}")
            res = results(out, "execute_result")
            expect(len(res) == 1 and res[0]["data"]["text/plain"] == "42" and res[0]["execution_count"] == reply["execution_count"], f"result {res}")
            reply, out = kernel.execute('var h = display("first");\nh.Update("second");')
            d, u = results(out, "display_data"), results(out, "update_display_data")
            expect(len(d) == 1 and len(u) == 1 and d[0]["transient"]["display_id"] == u[0]["transient"]["display_id"], f"display {d} update {u}")
            expect(d[0]["data"]["text/plain"] == "first" and u[0]["data"]["text/plain"] == "second", "display values")
        check("execute_outputs", execute_outputs)

        def completion():
            c = kernel.request(lambda: kc.complete("Console.Wri", 11))
            expect("WriteLine" in c["matches"] and "Write" in c["matches"], f"matches {c['matches']}")
            expect(c["cursor_start"] == 8 and c["cursor_end"] == 11, f"cursor {c['cursor_start']}..{c['cursor_end']}")
            expect(all(m.lower().startswith("wri") for m in c["matches"]), f"unrelated matches {c['matches']}")
            c = kernel.request(lambda: kc.complete("answ", 4))  # a variable from an earlier cell
            expect(c["matches"][:1] == ["answer"], f"globals: {c['matches']}")
            code = 'var greeting = "hi";\ngreeting.Sub'
            c = kernel.request(lambda: kc.complete(code, len(code)))  # members of a local of the cell being typed
            expect(c["matches"] == ["Substring"], f"members: {c['matches']}")
            c = kernel.request(lambda: kc.complete("System.Collections.Generic.Dict", 31))
            expect("Dictionary" in c["matches"], f"types in a namespace: {c['matches']}")
        check("completion", completion)

        def inspection():
            i = kernel.request(lambda: kc.inspect("Console.WriteLine", 17))
            body = i["data"].get("text/plain", "")
            expect(i["found"] and "void Console.WriteLine(bool value)" in body and "more overloads" in body, f"inspect {body!r}")
            expect("Writes" in body, f"no documentation summary in {body!r}")
            i = kernel.request(lambda: kc.inspect("answer", 6))
            expect(i["found"] and "int answer" in i["data"]["text/plain"] and "Value: 41" in i["data"]["text/plain"], f"inspect variable {i}")
        check("inspection", inspection)

        def is_complete():
            r = kernel.request(lambda: kc.is_complete("for (int i = 0; i < 3; i++)\n{"))
            expect(r["status"] == "incomplete", f"open block: {r}")
            r = kernel.request(lambda: kc.is_complete('var s = "a";'))
            expect(r["status"] == "complete", f"statement: {r}")
        check("is_complete", is_complete)

        def runtime_error():
            reply, out = kernel.execute('int[] small = new int[2];\nvar boom = small[5];')
            errs = results(out, "error")
            expect(reply["status"] == "error" and reply["ename"] == "IndexOutOfRangeException", f"reply {reply}")
            expect(len(errs) == 1 and "line 2" in errs[0]["traceback"][0], f"traceback {errs}")
            expect(any("IndexOutOfRangeException" in t for t in errs[0]["traceback"]), "exception type not in traceback")
            reply, out = kernel.execute("small.Length + answer")  # alive, and the state survived the failure
            expect(reply["status"] == "ok" and results(out, "execute_result")[0]["data"]["text/plain"] == "43", f"after error {reply}")
            reply, out = kernel.execute('var fine = 1;\nint wrong = "text";')
            expect(reply["status"] == "error" and reply["ename"] == "CompilationError" and "line 2" in reply["traceback"][0], f"compile error {reply}")
        check("runtime_error", runtime_error)

        def interrupt_message():
            msg_id = kc.execute("long spins = 0;\nwhile (true) { spins++; }")
            wait_until_running(kernel, msg_id)
            started = time.time()
            kernel.km.interrupt_kernel()  # kernel.json says interrupt_mode "message": an interrupt_request on control
            reply, out = kernel.collect(msg_id, timeout=30)
            expect(reply["status"] == "error" and reply["ename"] == "Interrupted", f"reply {reply}")
            expect(time.time() - started < 5, f"interrupt took {time.time() - started:.1f}s")
            expect("line 2" in results(out, "error")[0]["traceback"][0], "interrupt traceback names the line")
            reply, out = kernel.execute("spins > 1000")
            expect(results(out, "execute_result")[0]["data"]["text/plain"] == "True", "kernel alive with the loop's state")
        check("interrupt_message", interrupt_message)

        def interrupt_sigint():
            kernel.execute("long calls = 0;\nvoid Spin()\n{\n    for (;;) calls++;\n}")
            msg_id = kc.execute("Spin();")  # the loop is in a method of an earlier cell
            wait_until_running(kernel, msg_id)
            os.kill(kernel.pid(), signal.SIGINT)
            reply, _ = kernel.collect(msg_id, timeout=30)
            expect(reply["status"] == "error" and reply["ename"] == "Interrupted", f"reply {reply}")
            reply, out = kernel.execute("calls > 0")
            expect(results(out, "execute_result")[0]["data"]["text/plain"] == "True", "kernel alive after SIGINT")
        check("interrupt_sigint", interrupt_sigint)

        def interrupt_blocked():
            msg_id = kc.execute("System.Threading.Thread.Sleep(600_000);")
            wait_until_running(kernel, msg_id)
            kernel.km.interrupt_kernel()
            reply, _ = kernel.collect(msg_id, timeout=30)
            expect(reply["status"] == "error" and reply["ename"] == "Interrupted" and "did not stop" in reply["evalue"], f"reply {reply}")
            reply, out = kernel.execute("1 + 1")
            expect(results(out, "execute_result")[0]["data"]["text/plain"] == "2", "kernel answers after abandoning a blocked cell")
        check("interrupt_blocked", interrupt_blocked)

        def bad_signature():
            from jupyter_client.session import Session
            forger = Session(key=b"not-the-connection-key", signature_scheme="hmac-sha256", username="intruder")
            forged = forger.msg("execute_request", content={"code": 'Console.WriteLine("FORGED");', "silent": False, "store_history": True,
                                                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
            forger.send(kc.shell_channel.socket, forged)
            unsigned = Session(key=b"", username="intruder")
            unsigned.send(kc.shell_channel.socket, unsigned.msg("kernel_info_request"))
            kc.shell_channel.socket.send_multipart([b"<IDS|MSG>", b"garbage"])
            try:
                reply = kc.get_shell_msg(timeout=3)
                raise AssertionError(f"the kernel answered a forged message: {reply['msg_type']}")
            except queue.Empty:
                pass
            while True:  # no output of the forged cell either
                try:
                    msg = kc.get_iopub_msg(timeout=0.5)
                except queue.Empty:
                    break
                expect(msg["parent_header"].get("msg_id") != forged["header"]["msg_id"], f"iopub {msg['msg_type']} for the forged message")
            info = kernel.request(kc.kernel_info)
            expect(info["status"] == "ok", "kernel alive after bad messages")
            log = kernel.log_text()
            expect("invalid hmac-sha256 signature" in log, f"forged message not logged: {log[-500:]!r}")
            expect("unsigned message" in log and "expected signature and 4 JSON frames" in log, f"bad frames not logged: {log[-800:]!r}")
        check("bad_signature", bad_signature)

        def shutdown():
            process = kernel.km.provisioner.process
            msg_id = kc.shutdown()  # on the control channel, as Jupyter sends it
            reply = kc.get_control_msg(timeout=10)
            expect(reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok", f"shutdown reply {reply}")
            code = process.wait(timeout=10)
            expect(code == 0, f"kernel exited with {code}")
        check("shutdown", shutdown)
    finally:
        try:
            kernel.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - already gone after the shutdown check
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kernel-dll", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--mode", choices=["notebooks", "protocol"], required=True)
    args = p.parse_args()
    args.kernel_dll = os.path.abspath(args.kernel_dll)
    os.makedirs(args.work, exist_ok=True)
    try:
        install_kernelspec(args)
        print("CHECK install PASS", flush=True)
        RESULTS.append(("install", True))
    except Exception as e:  # noqa: BLE001
        print(f"CHECK install FAIL: {e}", flush=True)
        return 2
    if args.mode == "notebooks":
        check("notebook_00", lambda: check_notebook_00(args))
        if os.path.exists(os.path.join(args.repo, "notebooks", "01-attention.ipynb")):
            check("notebook_01", lambda: check_notebook_01(args))
        check("notebook_fixture", lambda: check_fixture(args))
    else:
        check("install_replaces_and_restores", lambda: check_replaces_and_restores(args))
        protocol_checks(args)
    failed = [n for n, ok in RESULTS if not ok]
    print(f"SUMMARY passed={len(RESULTS) - len(failed)} failed={len(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
