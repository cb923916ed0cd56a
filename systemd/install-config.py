#!/usr/bin/env python3
"""install-config: `meson install`'s step for /etc/readyd/readyd.yaml.

An operator's edited config must survive a reinstall or an upgrade, so
the default goes in as readyd.yaml only where there is none yet; next to
an existing one it goes in as readyd.yaml.dist, to compare by hand.
Honours DESTDIR (packaging installs into an empty staging tree, so a
package always carries readyd.yaml itself).

    install-config.py SOURCE_YAML SYSCONFDIR
"""
import os
import shutil
import sys


def main():
    src, sysconfdir = sys.argv[1], sys.argv[2]
    destdir = os.environ.get('DESTDIR', '')
    if destdir:
        # An absolute sysconfdir goes under DESTDIR as a relative path.
        sysconfdir = os.path.join(destdir, sysconfdir.lstrip('/'))
    confdir = os.path.join(sysconfdir, 'readyd')
    os.makedirs(confdir, exist_ok=True)
    target = os.path.join(confdir, 'readyd.yaml')
    if os.path.lexists(target):
        target += '.dist'
        why = 'kept the existing readyd.yaml; the default is'
    else:
        why = 'installed'
    shutil.copyfile(src, target)
    os.chmod(target, 0o644)
    if not os.environ.get('MESON_INSTALL_QUIET'):
        print('install-config: %s %s' % (why, target))
    return 0


if __name__ == '__main__':
    sys.exit(main())
