#!/usr/bin/env python3
"""check-repo: the repository stands alone and its tour is complete.

1. No text file cites a document that is not in the repository or a
   ticket number: every rule a comment leans on is in docs/ (see
   docs/style.md "Comments"), and every docs/ path a file names exists.
2. docs/ARCHITECTURE.md names every C file: by its path anywhere, or by
   its name (or its path below the folder) in the section whose heading
   names its folder (`## lib/store/`), the nearest such folder winning.
3. No folder holds more than MAX_C_PER_DIR C files: past that a family is
   split into subfolders.

Usage: check-repo.py [SOURCE_ROOT]. Exit 0 when all hold, 1 with every
problem listed otherwise.
"""
import os
import re
import subprocess
import sys

MAX_C_PER_DIR = 30

# Built from pieces so that this file does not match itself.
FORBIDDEN = [
    (re.compile('PRODUCT' + r'\.md'), 'cites a document outside the repository'),
    (re.compile('STYLE' + r'\.md'), 'cites a style guide outside the repository'),
    (re.compile(r'\b[Ii]ssue' + r'[ -]#?[0-9]+'), 'cites a ticket number'),
    (re.compile(r'\bthe ' + r'(brief|seed|lead)\b'), 'cites how it was built'),
]
DOC_REF = re.compile(r'(?<![\w/.-])docs/[\w./-]*[\w]')
TOUR = 'docs/ARCHITECTURE.md'


def repo_files(root):
    """Tracked files (git), or every file outside build and VCS dirs."""
    try:
        out = subprocess.run(['git', '-C', root, 'ls-files', '-z', '--cached', '--others',
                              '--exclude-standard'], check=True,
                             capture_output=True).stdout
        files = [f for f in out.decode().split('\0') if f]
        if files:
            return [f for f in files if os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(('.', 'build'))]
        files += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return files


def read_text(root, path):
    try:
        with open(os.path.join(root, path), 'rb') as f:
            data = f.read()
    except OSError:
        return None
    if b'\0' in data:
        return None
    return data.decode('utf-8', 'replace')


def check_citations(root, files):
    problems = []
    for path in files:
        if path.startswith('tests/fuzz/corpus/'):
            continue  # fuzz inputs are data, not prose
        text = read_text(root, path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for rx, why in FORBIDDEN:
                if rx.search(line):
                    problems.append('%s:%d: %s: %s' % (path, n, why, line.strip()))
            for ref in DOC_REF.findall(line):
                ref = ref.rstrip('.')
                if '*' not in ref and not os.path.exists(os.path.join(root, ref)):
                    problems.append('%s:%d: names %s, which does not exist' % (path, n, ref))
    return problems


def tour_sections(text):
    """{folder/: section text} for every heading that names a folder."""
    sections, folder, body = {}, None, []
    for line in text.splitlines():
        if line.startswith('#'):
            if folder:
                sections[folder] = sections.get(folder, '') + '\n'.join(body)
            m = re.search(r'`?([\w.-]+(?:/[\w.-]+)*/)`?', line)
            folder, body = (m.group(1) if m else None), []
        else:
            body.append(line)
    if folder:
        sections[folder] = sections.get(folder, '') + '\n'.join(body)
    return sections


def named_in_tour(path, text, sections):
    if re.search(r'(?<![\w/.-])' + re.escape(path) + r'(?![\w.-])', text):
        return True
    folders = [f for f in sections if path.startswith(f)]
    if not folders:
        return False
    folder = max(folders, key=len)
    rel = path[len(folder):]
    return re.search(r'(?<![\w/.-])' + re.escape(rel) + r'(?![\w.-])',
                     sections[folder]) is not None


def check_tour(root, files):
    text = read_text(root, TOUR) or ''
    sections = tour_sections(text)
    problems = []
    per_dir = {}
    for path in sorted(f for f in files if f.endswith('.c')):
        per_dir.setdefault(os.path.dirname(path), []).append(path)
        if not named_in_tour(path, text, sections):
            problems.append('%s: not named in %s (add a line to its folder\'s section)'
                            % (path, TOUR))
    for d, cs in sorted(per_dir.items()):
        if len(cs) > MAX_C_PER_DIR:
            problems.append('%s/: %d C files, more than %d: split the family'
                            % (d, len(cs), MAX_C_PER_DIR))
    return problems


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), '..', '..'))
    files = repo_files(root)
    if not any(f.endswith('.c') for f in files):
        print('check-repo: no C files under %s' % root)
        return 1
    problems = check_citations(root, files) + check_tour(root, files)
    for p in problems:
        print(p)
    print('check-repo: %d files, %d problems' % (len(files), len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
