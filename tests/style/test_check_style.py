#!/usr/bin/env python3
"""test_check_style: scripts/check-style reports each layering violation
with its file and line, reports nothing for code that keeps the rules
(comments, strings, statics, daemon/ handling signals...), and passes on
this repository."""
import os
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.environ.get("READYD_SOURCE_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CHECK = os.path.join(ROOT, "scripts", "check-style")

# path -> source; the comment on a line names the rule expected there.
TREE = {
    "lib/gate/gate.c": "/* gate: fine. */\nint gate_ok(void)\n{\n\treturn 0;\n}\n",
    "lib/gate/print.c": '/* x */\nvoid gate_p(void)\n{\n\tprintf("hello");\n}\n',
    "lib/gate/stderr.c": ('/* x */\nvoid gate_e(void)\n{\n\tfprintf(stderr, "x");\n'
                          '\tfputs("x", stdout);\n}\n'),
    "lib/gate/fd.c": '/* x */\nvoid gate_fd(void)\n{\n\twrite(2, "x", 1);\n}\n',
    "lib/gate/loud.c": ('/* x */\nvoid gate_l(void)\n{\n\trd_log(RD_LOG_WARN, NULL, "x");\n'
                        '\tlog_info("y");\n\trd_log(RD_LOG_DEBUG, NULL, "fine");\n}\n'),
    "lib/gate/quit.c": '/* x */\nvoid gate_q(void)\n{\n\texit(1);\n\tabort();\n}\n',
    "lib/gate/mhd.c": "/* x */\n#include <microhttpd.h>\nint gate_m;\n",
    "lib/gate/reply.c": '/* x */\nvoid gate_r(void)\n{\n\tapi_problem(req, 400, NULL, "x");\n}\n',
    "daemon/http.c": "/* x */\nvoid serve(void)\n{\n\tMHD_start_daemon(0);\n}\n",
    "lib/gate/sig.c": ("/* x */\nvoid gate_s(void)\n{\n\tsignal(SIGPIPE, SIG_IGN);\n"
                       "\tsd_notify(0, \"READY=1\");\n}\n"),
    "api/sig.c": "/* x */\nvoid api_s(void)\n{\n\tuv_signal_start(&h, cb, 2);\n}\n",
    "lib/gate/names.c": ("/* x */\nstatic int helper(void)\n{\n\treturn 1;\n}\n\n"
                         "int step(void)\n{\n\treturn helper();\n}\n\n"
                         "int gate_names_ok(void)\n{\n\treturn 0;\n}\n"),
    "lib/gate/data.c": "/* x */\nconst int table[2] = {1, 2};\nstatic const int fine = 3;\n",
    # Keeps the rules: prose, strings, statics, the places allowed.
    "lib/gate/quiet.c": ('/* We never printf( or exit( here, nor signal( */\n'
                         'static const char *const m = "abort() and MHD_YES";\n'
                         "void gate_quiet(void)\n{\n\tsnprintf(b, 1, \"%s\", m); // puts(\n}\n"),
    "lib/util/log.c": ('/* the logger */\nvoid rd_log_line(void)\n{\n'
                       '\twrite(STDERR_FILENO, "x", 1);\n}\n'),
    "lib/util/log.h": "#define log_error(...) rd_log(RD_LOG_ERROR, NULL, __VA_ARGS__)\n",
    "lib/loadgen/loadgen_conn.c": "/* x */\nint lg_conn_ok(void)\n{\n\treturn 0;\n}\n",
    "daemon/main.c": "/* x */\nvoid main_s(void)\n{\n\tsignal(SIGPIPE, SIG_IGN);\n}\n",
    "cli/main.c": "/* x */\nvoid cli_s(void)\n{\n\tsigaction(SIGINT, &sa, NULL);\n}\n",
    "api/server.c": "/* x */\n#include <microhttpd.h>\nvoid api_x(void)\n{\n\tMHD_run(d);\n}\n",
}

EXPECTED = {
    "lib/gate/print.c:4: lib-print",
    "lib/gate/stderr.c:4: lib-print",
    "lib/gate/stderr.c:5: lib-print",
    "lib/gate/fd.c:4: lib-print",
    "lib/gate/loud.c:4: lib-log",
    "lib/gate/loud.c:5: lib-log",
    "lib/gate/quit.c:4: lib-exit",
    "lib/gate/quit.c:5: lib-exit",
    "lib/gate/mhd.c:2: http",
    "lib/gate/reply.c:4: http",
    "daemon/http.c:4: http",
    "lib/gate/sig.c:4: signals",
    "lib/gate/sig.c:5: signals",
    "api/sig.c:4: signals",
    "lib/gate/names.c:7: prefix",
    "lib/gate/data.c:2: prefix",
}


def run_check(root):
    r = subprocess.run([CHECK, root], capture_output=True, text=True, timeout=240)
    found = set()
    for line in r.stderr.splitlines():
        parts = line.split(": ")
        if len(parts) >= 3 and parts[0].count(":") == 1:
            found.add(parts[0] + ": " + parts[1])
    return r.returncode, found, r.stderr


class CheckStyle(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="check-style-")
        for rel, text in TREE.items():
            path = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_each_violation_reported_with_file_and_line(self):
        rc, found, err = run_check(self.root)
        self.assertNotEqual(rc, 0)
        self.assertEqual(found, EXPECTED, err)

    def test_prefix_from_the_built_library(self):
        """With a library built after the sources, nm says what is exported."""
        cc = shutil.which("cc")
        if not cc or not shutil.which("ar") or not shutil.which("nm"):
            self.skipTest("no cc, ar or nm")
        objdir = os.path.join(self.root, "build", "lib", "libreadyd.a.p")
        os.makedirs(objdir)
        obj = os.path.join(objdir, "gate_names.c.o")
        subprocess.run([cc, "-g", "-c", "-o", obj, os.path.join(self.root, "lib/gate/names.c")],
                       check=True)
        subprocess.run(["ar", "rcs", os.path.join(self.root, "build/lib/libreadyd.a"), obj],
                       check=True)
        rc, found, err = run_check(self.root)
        self.assertNotEqual(rc, 0)
        prefix = {f for f in found if f.endswith(": prefix")}
        # Only names.c is in the library: data.c's table is not exported there.
        self.assertEqual(prefix, {"lib/gate/names.c:7: prefix"}, err)

    def test_repository_passes(self):
        r = subprocess.run([CHECK], capture_output=True, text=True, timeout=240)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
