"""A parameter-server cluster on this machine: ps and workers as processes on 127.0.0.1.

    slimnorm cluster --num_ps 1 --num_workers 2 -- \\
        --train_dir runs/dist --max_steps 600 --sync_replicas

starts ``slimnorm train`` once per task, on free loopback ports, with
``--ps_hosts/--worker_hosts/--job_name/--task_index`` filled in and the
flags after ``--`` passed on; prints every task's output prefixed with its
name (``[worker 1] ...``); returns when all tasks have exited, and stops
every task that is still running when one fails, at the time-out, or on
Ctrl-C. The same commands run on real hosts, one per machine, with their
addresses instead of 127.0.0.1 (README, "Training on several devices and
machines").

:class:`LocalCluster` is what tests/test_cluster.py drives: it can kill a
task (SIGKILL) and start it again on the same port.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from slimnorm.cli.help_format import DefaultsFormatter

LOOPBACK = '127.0.0.1'


def free_ports(count):
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalCluster:
    """ps and worker processes of ``slimnorm train`` on 127.0.0.1; a context manager.

    ``train_args``: the slimnorm train flags every task gets. ``log(name,
    line)`` receives each output line of each task. Leaving the ``with``
    block kills whatever still runs.
    """

    def __init__(self, num_ps, num_workers, train_args, log=None, env=None):
        ports = free_ports(num_ps + num_workers)
        self.ps_hosts = [f'{LOOPBACK}:{p}' for p in ports[:num_ps]]
        self.worker_hosts = [f'{LOOPBACK}:{p}' for p in ports[num_ps:]]
        self.train_args = [str(a) for a in train_args]
        self.log = log or (lambda name, line: print(f'[{name}] {line}', flush=True))
        self.env = dict(os.environ if env is None else env, PYTHONUNBUFFERED='1')
        self.env.pop('TF_CONFIG', None)
        self.processes = {}
        self._readers = {}

    @property
    def task_names(self):
        return ([('ps', i) for i in range(len(self.ps_hosts))]
                + [('worker', i) for i in range(len(self.worker_hosts))])

    def command(self, job_name, task_index):
        return [sys.executable, '-m', 'slimnorm.cli.train', *self.train_args,
                '--ps_hosts', ','.join(self.ps_hosts),
                '--worker_hosts', ','.join(self.worker_hosts),
                '--job_name', job_name, '--task_index', str(task_index)]

    def start(self, job_name=None, task_index=None):
        """Starts one task, or every task when no name is given."""
        tasks = self.task_names if job_name is None else [(job_name, task_index)]
        for job, index in tasks:
            name = f'{job} {index}'
            process = subprocess.Popen(self.command(job, index), stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, env=self.env)
            self.processes[name] = process
            reader = threading.Thread(target=self._stream, args=(name, process), daemon=True)
            reader.start()
            self._readers[name] = reader
        return self

    def _stream(self, name, process):
        for line in process.stdout:
            self.log(name, line.rstrip('\n'))

    def kill(self, name):
        """SIGKILL to task ``name`` (e.g. ``'worker 1'``); waits for it to be gone."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        self._readers[name].join(timeout=10)

    def wait(self, timeout_secs, names=None):
        """Waits for the tasks (all by default) to exit; returns ``{name: exit code}``.

        A task failing stops the others; at the time-out every task is
        killed and TimeoutError is raised.
        """
        names = list(names or self.processes)
        deadline = time.monotonic() + timeout_secs
        while True:
            codes = {n: self.processes[n].poll() for n in names}
            if any(code not in (None, 0) for code in codes.values()):
                self.stop()
                return {n: self.processes[n].poll() for n in names}
            if all(code is not None for code in codes.values()):
                for name in names:
                    self._readers[name].join(timeout=10)
                return codes
            if time.monotonic() > deadline:
                self.stop()
                running = [n for n, code in codes.items() if code is None]
                raise TimeoutError(f'tasks {", ".join(running)} still ran after '
                                   f'{timeout_secs:g} s; all tasks were stopped')
            time.sleep(0.2)

    def stop(self):
        """Kills every task still running (SIGTERM, then SIGKILL after 5 s)."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + 5
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def build_parser(prog='slimnorm cluster'):
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=DefaultsFormatter,
        description='Start ps and worker tasks of slimnorm train on 127.0.0.1 and '
                    'stream their logs; flags after -- go to every task.')
    parser.add_argument('--num_ps', type=int, default=1,
                        help='ps tasks (0 for a workers-only cluster, as --sync_batch_norm '
                        'needs)')
    parser.add_argument('--num_workers', type=int, default=2)
    parser.add_argument('--timeout_secs', type=float, default=3600.0,
                        help='stop every task after this long')
    return parser


def main(argv=None, prog='slimnorm cluster'):
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index('--') if '--' in argv else len(argv)
    args = build_parser(prog).parse_args(argv[:split])
    if args.num_ps < 0 or args.num_workers < 1:
        build_parser(prog).error(f'--num_ps {args.num_ps} --num_workers {args.num_workers}; '
                             'accepted: --num_ps 0 or more, --num_workers 1 or more')
    cluster = LocalCluster(args.num_ps, args.num_workers, argv[split + 1:])
    print(f'ps: {",".join(cluster.ps_hosts)}  workers: {",".join(cluster.worker_hosts)}',
          flush=True)
    with cluster:
        cluster.start()
        try:
            codes = cluster.wait(args.timeout_secs)
        except KeyboardInterrupt:
            print('interrupted: stopping every task', flush=True)
            return 130
        except TimeoutError as err:
            print(err, flush=True)
            return 1
    failed = {name: code for name, code in codes.items() if code}
    for name, code in failed.items():
        print(f'{name} exited with code {code}', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
