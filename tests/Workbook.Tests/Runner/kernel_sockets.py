#!/usr/bin/python3
"""Starts the .net-csharp kernel from JUPYTER_PATH with jupyter_client, runs one cell, and prints (one JSON line)
the kernel's argv and every listening TCP socket of the kernel's process tree: {"argv": [...], "listening": ["ip:port"]}.
"""
import json
import os
import jupyter_client


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def socket_inodes(pids):
    inodes = set()
    for p in pids:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                target = os.readlink(f"/proc/{p}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    return inodes


def listening(inodes):
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            hexip, hexport = local.split(":")
            port = int(hexport, 16)
            if v6:
                raw = bytes.fromhex(hexip)
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                b = b"".join(words)
                ip = ":".join(b[i:i + 2].hex() for i in range(0, 16, 2))
            else:
                ip = ".".join(str(int(hexip[i:i + 2], 16)) for i in (6, 4, 2, 0))
            found.append(f"{ip}:{port}")
    return sorted(found)


km, kc = jupyter_client.manager.start_new_kernel(kernel_name=".net-csharp")
try:
    kc.execute_interactive("1 + 1", timeout=120)
    pid = km.provisioner.process.pid
    print(json.dumps({"argv": km.kernel_spec.argv, "listening": listening(socket_inodes(tree(pid)))}))
finally:
    km.shutdown_kernel(now=True)
