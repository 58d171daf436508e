"""Times a command's runs by the clock and by the CPU it used, for
benches/service.rs.

    python3 benches/common/cpu_time.py --runs N [--remove FILE] [--busy] -- COMMAND...

Prints one line per run: wall milliseconds, then CPU milliseconds (user and
system time of the command, as the kernel accounts it to a waited-for child).
`--remove` deletes FILE before each run (the stamp, to make a render plan).
`--busy` keeps one core busy with a loop while the runs take place, as
another program on a shared machine would: a command whose work is spread
over two cores then takes about as long as its CPU time.
"""

import argparse
import os
import resource
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--remove")
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    busy = None
    if args.busy:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        # The loop is running before the first timed run starts.
        time.sleep(0.3)
    try:
        for _ in range(args.runs):
            if args.remove:
                try:
                    os.remove(args.remove)
                except FileNotFoundError:
                    pass
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(f"{wall * 1e3:.3f} {cpu * 1e3:.3f}", flush=True)
    finally:
        if busy:
            busy.kill()
            busy.wait()


if __name__ == "__main__":
    main()
