#!/usr/bin/env bash
# Build the Python documentation evaluation corpus (bench/eval/pydoc-qa.jsonl).
#
# Usage: make-pydoc-corpus.sh OUTDIR
#
# Source: Debian's python3.11-doc package (the Python 3.11 documentation as HTML).
# Result (the eval set's "sources" paths are relative to OUTDIR):
#   OUTDIR/html/   HTML pages as shipped (navigation included, no CSS/images), in the
#                  documentation's own folders: tutorial/, howto/, faq/, reference/,
#                  using/, installing/, library/ (a selection), and glossary.html
#   OUTDIR/pdf/    12 of those pages converted to PDF, e.g. pdf/library/functools.pdf
#   OUTDIR/docx/   12 of those pages converted to DOCX, e.g. docx/library/csv.docx
# A page converted to PDF or DOCX is not also kept as HTML.
#
# Needs root (or sudo) only if LibreOffice is missing. Safe to re-run: the three
# folders are rebuilt from scratch each time, other files in OUTDIR are left alone.
# Prints one summary line; errors go to stderr.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
START=$(date +%s)

# Whole folders of the documentation kept as HTML (howto/ without the two longest pages).
DIRS=(tutorial howto faq reference using installing)
SKIP=(howto/clinic howto/logging-cookbook)
TOP=(glossary)
# library/: the module pages of up to about 15,000 characters of text, plus the
# longer pages developers read most (functions, re, subprocess, logging...).
LIBRARY=(
    2to3 __future__ __main__ _thread abc aifc archiving argparse array asynchat asyncio
    asyncio-api-index asyncio-dev asyncio-exceptions asyncio-extending asyncio-future
    asyncio-llapi-index asyncio-platforms asyncio-policy asyncio-queue asyncio-runner
    asyncio-stream asyncio-subprocess asyncio-sync asyncio-task asyncore atexit audioop
    audit_events base64 bdb binary binascii bisect builtins bz2 calendar cgitb chunk cmath
    cmd code codeop collections collections.abc colorsys compileall concurrency concurrent
    configparser constants contextlib contextvars copy copyreg crypt crypto csv
    curses.ascii curses.panel custominterp dataclasses datatypes dbm debug development
    devmode dialog distribution distutils email email.charset email.contentmanager
    email.encoders email.errors email.examples email.generator email.header email.iterators
    email.mime email.parser email.utils ensurepip enum errno faulthandler fcntl filecmp
    fileformats fileinput filesys fnmatch fractions frameworks functional functions
    functools gc getopt getpass glob graphlib grp gzip hashlib heapq hmac html
    html.entities html.parser http http.cookies i18n imghdr imp importlib.metadata
    importlib.resources importlib.resources.abc index intro ipc itertools json keyword
    language linecache logging lzma mailcap markup marshal mimetypes mm mmap modulefinder
    modules msilib msvcrt multiprocessing.shared_memory netdata netrc nis numbers numeric
    operator ossaudiodev pathlib persistence pickle pickletools pipes pkgutil platform
    plistlib poplib posix pprint pty pwd py_compile pyclbr pydoc python queue quopri random
    re readline reprlib resource rlcompleter runpy sched secrets security_warnings
    selectors shelve shlex shutil site smtpd sndhdr spwd stat statistics string stringprep
    subprocess sunau superseded symtable sys sys_path_init sysconfig syslog tabnanny
    telnetlib tempfile termios text textwrap time timeit tk tkinter.colorchooser
    tkinter.dnd tkinter.font tkinter.messagebox tkinter.scrolledtext tkinter.tix token
    tokenize tomllib trace tty types unicodedata unix urllib urllib.error
    urllib.robotparser uu uuid venv wave webbrowser windows winsound xdrlib xml
    xml.dom.minidom xml.dom.pulldom xml.sax xml.sax.reader xml.sax.utils xmlrpc
    xmlrpc.server zipapp zipimport zlib zoneinfo)
# Pages converted to PDF / DOCX (removed from html/ so each page exists once).
PDF_PAGES=(
    tutorial/venv howto/sorting faq/windows
    library/functools library/dataclasses library/tempfile library/timeit library/secrets
    library/bisect library/heapq library/gzip library/zipapp
)
DOCX_PAGES=(
    tutorial/errors howto/ipaddress
    library/csv library/shlex library/textwrap library/uuid library/glob library/fnmatch
    library/statistics library/pprint library/base64 library/getpass
)

WORK=$(mktemp -d)
LOG=$WORK/log
: >"$LOG"
STAGE=
cleanup() {
    rm -rf "$WORK"
    if [ -n "$STAGE" ]; then rm -rf "$STAGE"; fi
}
trap cleanup EXIT

die() {
    echo "make-pydoc-corpus: $*" >&2
    if [ -s "$LOG" ]; then tail -n 20 "$LOG" >&2; fi
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq --no-install-recommends "$@" >>"$LOG" 2>&1 && return 0
    as_root apt-get update -qq >>"$LOG" 2>&1
    as_root apt-get install -y -qq --no-install-recommends "$@" >>"$LOG" 2>&1
}

# 1. Tools: LibreOffice Writer (headless) and the fonts the layout (and so the
#    PDF page numbers) was made with; poppler-utils for the page count.
if ! command -v soffice >/dev/null 2>&1 \
    || [ ! -e /usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf ] \
    || [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
    || ! command -v pdfinfo >/dev/null 2>&1; then
    apt_install libreoffice-writer-nogui fonts-liberation fonts-dejavu-core poppler-utils \
        || die "cannot install libreoffice-writer-nogui (apt-get failed)"
fi

# 2. Download and unpack the python3.11-doc package.
download() { (cd "$WORK/deb" && apt-get download -qq python3.11-doc) >>"$LOG" 2>&1; }
mkdir -p "$WORK/deb"
if ! download; then
    as_root apt-get update -qq >>"$LOG" 2>&1 || true
    download || die "cannot download python3.11-doc"
fi
debs=("$WORK"/deb/python3.11-doc_*.deb)
DEB=${debs[0]}
[ -f "$DEB" ] || die "apt-get download produced no .deb"
dpkg -x "$DEB" "$WORK/x" || die "cannot unpack $DEB"
SRC=$WORK/x/usr/share/doc/python3.11/html
[ -d "$SRC/library" ] && [ -d "$SRC/tutorial" ] || die "no html/library or html/tutorial in $DEB"

# 3. Stage the new corpus next to OUTDIR's folders.
mkdir -p "$OUT"
STAGE=$(mktemp -d "$OUT/.build.XXXXXX")
mkdir -p "$STAGE/html/library" "$STAGE/pdf" "$STAGE/docx"

for d in "${DIRS[@]}"; do
    [ -d "$SRC/$d" ] || die "missing folder $d/"
    mkdir -p "$STAGE/html/$d"
    cp "$SRC/$d"/*.html "$STAGE/html/$d/"       # HTML only: no images, no CSS
done
for p in "${SKIP[@]}"; do
    rm -f "$STAGE/html/$p.html"
done
for p in "${TOP[@]}"; do
    [ -f "$SRC/$p.html" ] || die "missing page $p.html"
    cp "$SRC/$p.html" "$STAGE/html/"
done
for p in "${LIBRARY[@]}"; do
    [ -f "$SRC/library/$p.html" ] || die "missing page library/$p.html"
    cp "$SRC/library/$p.html" "$STAGE/html/library/"
done
for p in "${PDF_PAGES[@]}" "${DOCX_PAGES[@]}"; do
    [ -f "$STAGE/html/$p.html" ] || die "page to convert $p.html is not in the selection"
done

# Pages to convert: keep just the page's text (drop the menus, the navigation bars,
# the sidebar, the footer and the heading anchors' pilcrows).
strip_nav() {
    mkdir -p "$(dirname "$2")"
    perl -0pe 's{<body>.*?<div class="body" role="main">}{<body>\n<div>}s;
               s{<div class="sphinxsidebar".*?</body>}{</body>}s;
               s{<a class="headerlink"[^>]*>.*?</a>}{}gs;
               s{<script\b.*?</script>}{}gs;
               s{<link rel="stylesheet"[^>]*>}{}gs' "$1" >"$2"
}
for p in "${PDF_PAGES[@]}"; do
    strip_nav "$STAGE/html/$p.html" "$WORK/conv/pdf/$p.html"
    rm -f "$STAGE/html/$p.html"
done
for p in "${DOCX_PAGES[@]}"; do
    strip_nav "$STAGE/html/$p.html" "$WORK/conv/docx/$p.html"
    rm -f "$STAGE/html/$p.html"
done

# Private LibreOffice profile: no clash with a running instance, same
# default settings on every machine.
LO=(soffice "-env:UserInstallation=file://$WORK/lo-profile" --headless --norestore
    --infilter="HTML (StarWriter)")
for fmt in pdf docx; do
    target=pdf
    [ "$fmt" = docx ] && target="docx:MS Word 2007 XML"
    for dir in "$WORK/conv/$fmt"/*/; do
        sub=$(basename "$dir")
        mkdir -p "$STAGE/$fmt/$sub"
        "${LO[@]}" --convert-to "$target" --outdir "$STAGE/$fmt/$sub" "$dir"*.html >>"$LOG" 2>&1 \
            || die "$fmt conversion failed ($sub)"
    done
done
for p in "${PDF_PAGES[@]}"; do
    [ -s "$STAGE/pdf/$p.pdf" ] || die "no PDF made for $p"
done
for p in "${DOCX_PAGES[@]}"; do
    [ -s "$STAGE/docx/$p.docx" ] || die "no DOCX made for $p"
done

# 4. Swap the new folders in.
for d in html pdf docx; do
    rm -rf "${OUT:?}/$d"
    mv "$STAGE/$d" "$OUT/$d"
done
rmdir "$STAGE"
STAGE=

n_html=$(find "$OUT/html" -name '*.html' -type f | wc -l)
n_lib=$(find "$OUT/html/library" -name '*.html' -type f | wc -l)
n_pdf=$(find "$OUT/pdf" -name '*.pdf' -type f | wc -l)
n_docx=$(find "$OUT/docx" -name '*.docx' -type f | wc -l)
pages=0
while IFS= read -r f; do
    n=$(pdfinfo "$f" 2>/dev/null | awk '/^Pages:/ {print $2}')
    pages=$((pages + ${n:-0}))
done < <(find "$OUT/pdf" -name '*.pdf' -type f | sort)
echo "pydoc corpus ($(basename "$DEB" .deb)) in $OUT: $n_html html ($n_lib library), $n_pdf pdf ($pages pages), $n_docx docx; $(( $(date +%s) - START ))s"
