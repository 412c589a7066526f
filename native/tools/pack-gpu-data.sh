#!/usr/bin/env bash
# Writes a small Fashion-MNIST subset (the first 2,000 training and 1,000 test
# images, IDX format, gzipped; about 1.5 MB) to .gpu-data/fashion-mnist/ for a
# GPU machine that lacks Debian's dataset-fashion-mnist: gpu-check.sh's mim
# and spark steps read it from there (--data) when the system copy is absent.
# The full set (30 MB) would not fit what such a machine is sent.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=${1:-/usr/share/datasets/fashion-mnist}
dst=.gpu-data/fashion-mnist
[ -f "$src/train-images-idx3-ubyte.gz" ] || { echo "pack-gpu-data: no $src/train-images-idx3-ubyte.gz (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
mkdir -p "$dst"
python3 - "$src" "$dst" <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for stem, n in [('train', 2000), ('t10k', 1000)]:
    for kind, head in [('images-idx3-ubyte', 16), ('labels-idx1-ubyte', 8)]:
        with gzip.open(f'{src}/{stem}-{kind}.gz', 'rb') as f:
            data = f.read()
        dims = struct.unpack('>' + 'I' * (head // 4), data[:head])
        per = 1 if head == 8 else dims[2] * dims[3]
        assert dims[1] >= n, f'{stem}-{kind}: only {dims[1]} records'
        out = struct.pack('>II', dims[0], n) + data[8:head] + data[head:head + n * per]
        with gzip.open(f'{dst}/{stem}-{kind}.gz', 'wb') as g:
            g.write(out)
PY
grep -qx '/.gpu-data/' .git/info/exclude 2>/dev/null || echo '/.gpu-data/' >> .git/info/exclude
du -sh "$dst"
