"""Package: what an operator installs. `meson install` keeps an edited
/etc/readyd/readyd.yaml; the Debian package (scripts/build-deb) is
lintian clean, installs (user, state directory, conffile), runs as its
user, keeps an edited conffile across two upgrades (the default unchanged,
then changed) and leaves nothing behind when purged.

The package test installs into this machine's / with dpkg: it needs root
(or sudo without a password) and is skipped without, except under CI=true
where it must run. /usr/sbin/policy-rc.d (exit 101) keeps the package's
scripts from starting readyd.service while it runs; a readyd already
installed is never touched (the test fails instead).

    MESON_BUILD_ROOT=build python3 tests/package/test_package.py
"""
import glob
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('MESON_BUILD_ROOT', os.path.join(SRC, 'build'))
CONF = '/etc/readyd/readyd.yaml'
STATE = '/var/lib/readyd'
POLICY_RC_D = '/usr/sbin/policy-rc.d'
EDIT = '# edited by the operator: kept across upgrades\n'
BASH_COMPLETION = '/usr/share/bash-completion/completions/readyctl'
ZSH_COMPLETION = '/usr/share/zsh/vendor-completions/_readyctl'


def privileged():
    """The command prefix that runs as root, or None."""
    if os.geteuid() == 0:
        return []
    if shutil.which('sudo') and subprocess.run(
            ['sudo', '-n', 'true'], capture_output=True).returncode == 0:
        return ['sudo', '-n']
    return None


SUDO = privileged()


def run(argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError('%s: exit %d\n%s%s' % (' '.join(argv), p.returncode,
                                                   p.stdout[-4000:], p.stderr[-4000:]))
    return p


def root(argv, check=True, **kw):
    return run(SUDO + argv, check=check, **kw)


def dpkg(*args):
    """dpkg as root, waiting (up to 2 minutes) for another apt or dpkg on
    the machine to let go of the lock."""
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    deadline = time.monotonic() + 120
    while True:
        p = root(['env', 'DEBIAN_FRONTEND=noninteractive', 'dpkg'] + list(args),
                 check=False, env=env)
        if p.returncode == 0:
            return p
        if 'lock' not in p.stderr or time.monotonic() > deadline:
            raise AssertionError('dpkg %s: exit %d\n%s%s' % (' '.join(args), p.returncode,
                                                           p.stdout, p.stderr))
        time.sleep(1)


def installed_version():
    p = run(['dpkg-query', '-W', '-f=${Status} ${Version}', 'readyd'], check=False)
    if p.returncode != 0 or not p.stdout.startswith('install ok installed'):
        return None
    return p.stdout.split()[-1]


def read_root(path):
    return root(['cat', path]).stdout


def write_root(path, text):
    subprocess.run(SUDO + ['tee', path], input=text, text=True, check=True,
                   stdout=subprocess.DEVNULL)


def repack(deb, tmp, version, new_default=None):
    """The same package as version `version`; with new_default, shipping
    that text as the default readyd.yaml (a changed conffile)."""
    tree = os.path.join(tmp, 'tree-' + version)
    root(['dpkg-deb', '-R', deb, tree])
    control = os.path.join(tree, 'DEBIAN', 'control')
    lines = [('Version: %s' % version) if ln.startswith('Version:') else ln
             for ln in read_root(control).splitlines()]
    write_root(control, '\n'.join(lines) + '\n')
    if new_default is not None:
        write_root(os.path.join(tree, CONF.lstrip('/')), new_default)
        md5 = root(['sh', '-c', 'cd "$1" && md5sum etc/readyd/readyd.yaml', 'sh', tree]).stdout
        sums = [ln for ln in read_root(os.path.join(tree, 'DEBIAN', 'md5sums')).splitlines()
                if not ln.endswith(' etc/readyd/readyd.yaml')]
        write_root(os.path.join(tree, 'DEBIAN', 'md5sums'), '\n'.join(sums + [md5.strip()]) + '\n')
    out = os.path.join(tmp, 'readyd_%s.deb' % version)
    root(['dpkg-deb', '--root-owner-group', '-Zxz', '-b', tree, out])
    return out


class MesonInstall(unittest.TestCase):
    """`meson install` twice into a DESTDIR: the second keeps the edited
    readyd.yaml and puts the default beside it as readyd.yaml.dist."""

    def test_meson_install_keeps_edited_config(self):
        if not os.path.exists(os.path.join(BUILD, 'build.ninja')):
            self.skipTest('no meson build directory at %s (set MESON_BUILD_ROOT)' % BUILD)
        tmp = tempfile.mkdtemp(prefix='readyd-install-')
        try:
            argv = ['meson', 'install', '-C', BUILD, '--no-rebuild', '--quiet',
                    '--destdir', tmp]
            run(argv)
            found = glob.glob(os.path.join(tmp, '**', 'readyd', 'readyd.yaml'), recursive=True)
            self.assertEqual(len(found), 1, found)
            conf = found[0]
            with open(os.path.join(SRC, 'examples', 'readyd.yaml'), encoding='utf-8') as f:
                default = f.read()
            with open(conf, encoding='utf-8') as f:
                self.assertEqual(f.read(), default)
            with open(conf, 'a', encoding='utf-8') as f:
                f.write(EDIT)
            run(argv)
            with open(conf, encoding='utf-8') as f:
                self.assertEqual(f.read(), default + EDIT)
            with open(conf + '.dist', encoding='utf-8') as f:
                self.assertEqual(f.read(), default)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class DebianPackage(unittest.TestCase):

    def setUp(self):
        if SUDO is None:
            if os.environ.get('CI') == 'true':
                self.fail('CI=true: the package test must run, but there is neither root '
                          'nor sudo without a password to run dpkg with')
            self.skipTest('installing a package needs root or sudo without a password')
        if installed_version() is not None:
            self.fail('a readyd package (%s) is installed on this machine already; the '
                      'test installs and purges its own and will not touch that one'
                      % installed_version())
        self.tmp = tempfile.mkdtemp(prefix='readyd-deb-')
        self.own_policy = not os.path.lexists(POLICY_RC_D)
        if self.own_policy:
            write_root(POLICY_RC_D, '#!/bin/sh\n# readyd package test: start no services\n'
                       'exit 101\n')
            root(['chmod', '0755', POLICY_RC_D])

    def tearDown(self):
        try:
            if installed_version() is not None:
                dpkg('--purge', 'readyd')
        finally:
            if self.own_policy:
                root(['rm', '-f', POLICY_RC_D])
            root(['rm', '-rf', self.tmp])

    def build(self):
        """scripts/build-deb with lintian: any error or warning fails it."""
        p = run([os.path.join(SRC, 'scripts', 'build-deb'), '--outdir', self.tmp])
        deb = p.stdout.strip().splitlines()[-1]
        self.assertTrue(os.path.exists(deb), p.stdout)
        lint = [ln for ln in p.stdout.splitlines() if ln[:2] in ('E:', 'W:')]
        print('lintian (--info --display-info --pedantic), %d lines:\n%s'
              % (len(p.stdout.splitlines()) - 1, '\n'.join(p.stdout.splitlines()[:-1])))
        self.assertEqual(lint, [])
        return deb

    def check_installed(self, version):
        self.assertEqual(installed_version(), version)
        out = run(['/usr/sbin/readyd', '--version']).stdout
        self.assertEqual(out.strip(), 'readyd ' + version.split('+')[0])
        out = run(['/usr/sbin/readyd', '--check-config', '--config', CONF]).stdout
        self.assertIn('configuration OK', out)
        for path in ('/usr/bin/readyctl', '/usr/bin/readyd-load',
                     '/lib/systemd/system/readyd.service', '/lib/systemd/system/readyd.socket',
                     '/usr/lib/sysusers.d/readyd.conf', '/usr/lib/tmpfiles.d/readyd.conf',
                     '/usr/share/man/man8/readyd.8.gz', '/usr/share/man/man1/readyctl.1.gz',
                     '/usr/share/man/man1/readyd-load.1.gz',
                     '/usr/share/man/man5/readyd.yaml.5.gz',
                     BASH_COMPLETION, ZSH_COMPLETION):
            self.assertTrue(os.path.exists(path), path)
        # The zsh completion is where Debian's zsh looks (its default
        # fpath, without a user's .zshrc); the bash one completes.
        if shutil.which('zsh'):
            fpath = run(['zsh', '-fc', 'print -l $fpath']).stdout.split()
            self.assertIn(os.path.dirname(ZSH_COMPLETION), fpath)
        out = run(['bash', '-c', 'source %s; COMP_WORDS=(readyctl su); COMP_CWORD=1; '
                   '_readyctl; printf "%%s\\n" "${COMPREPLY[@]}"' % BASH_COMPLETION]).stdout
        self.assertEqual(out.split(), ['submit'])
        conffiles = run(['dpkg-query', '--control-show', 'readyd', 'conffiles']).stdout
        self.assertEqual(conffiles.split(), [CONF])
        st = os.stat(STATE)
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, 'readyd')
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, 'readyd')
        self.assertEqual(st.st_mode & 0o777, 0o750)

    def serve_once(self):
        """readyd as its user on its config and state directory: the
        database lands in /var/lib/readyd, /healthz answers."""
        port_file = os.path.join(STATE, 'test.port')
        log = open(os.path.join(self.tmp, 'readyd.log'), 'w+', encoding='utf-8')
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            SUDO + ['runuser', '-u', 'readyd', '--', '/usr/sbin/readyd', '--config', CONF,
                    '--listen', '127.0.0.1:0', '--port-file', port_file],
            stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            deadline = time.monotonic() + 15
            port = ''
            while not port and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
                port = root(['cat', port_file], check=False).stdout.strip()
            log.seek(0)
            self.assertTrue(port, 'readyd did not start:\n' + log.read())
            with urllib.request.urlopen('http://127.0.0.1:%s/healthz' % port, timeout=10) as r:
                self.assertEqual(r.status, 200)
        finally:
            if proc.poll() is None:
                root(['pkill', '-TERM', '-P', str(proc.pid)], check=False)
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            root(['rm', '-f', port_file])
        self.assertTrue(os.path.exists(os.path.join(STATE, 'readyd.db')))

    def test_install_edit_upgrade_purge(self):
        deb = self.build()
        dpkg('-i', deb)
        self.check_installed('0.1.0')
        self.serve_once()

        default = read_root(CONF)
        write_root(CONF, default + EDIT)
        # An upgrade whose default config is unchanged: dpkg keeps the
        # edited file without a question.
        dpkg('-i', repack(deb, self.tmp, '0.1.0+test1'))
        self.check_installed('0.1.0+test1')
        self.assertEqual(read_root(CONF), default + EDIT)
        # An upgrade whose default changed: the operator's file stays, the
        # new default lands beside it (what --force-confold answers).
        new_default = default + '# a setting the new version documents\n'
        dpkg('--force-confdef', '--force-confold', '-i',
             repack(deb, self.tmp, '0.1.0+test2', new_default))
        self.check_installed('0.1.0+test2')
        self.assertEqual(read_root(CONF), default + EDIT)
        self.assertEqual(read_root(CONF + '.dpkg-dist'), new_default)
        self.assertTrue(os.path.exists(os.path.join(STATE, 'readyd.db')),
                        'the database must survive an upgrade')

        # Remove keeps the config and the data; purge takes everything.
        dpkg('--remove', 'readyd')
        self.assertTrue(os.path.exists(CONF))
        self.assertTrue(os.path.exists(os.path.join(STATE, 'readyd.db')))
        dpkg('--purge', 'readyd')
        self.assertIsNone(installed_version())
        for path in ('/etc/readyd', STATE, '/usr/sbin/readyd', '/usr/bin/readyctl',
                     '/lib/systemd/system/readyd.service'):
            self.assertFalse(os.path.lexists(path), path + ' is left after purge')
        self.assertNotEqual(run(['getent', 'passwd', 'readyd'], check=False).returncode, 0)
        self.assertNotEqual(run(['getent', 'group', 'readyd'], check=False).returncode, 0)


if __name__ == '__main__':
    unittest.main(verbosity=2)
