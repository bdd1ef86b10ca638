#!/usr/bin/env bash
# Builds `intuitor` and `intuitor-bench` with `--features cuda` on a machine without a GPU or a
# CUDA install, for the GPU machine (H200, compute capability 9.0, CUDA 13.0 driver).
#
# The toolkit comes from NVIDIA's CUDA 13.0.x PyPI wheels (pinned below; a 13.5 nvcc emits PTX
# too new for a 13.0 driver), unpacked under target/cuda/root (git-ignored). No wheel ships the
# driver library, so a stub libcuda.so.1 is compiled from the driver functions cudarc declares:
# it exists only for the linker; at run time the GPU machine's own libcuda.so.1 is loaded, and
# libcudart/libcublas/libcublasLt/libcurand/libnvrtc come from its PyTorch wheels
# (scripts/gpu_check.sh puts them on LD_LIBRARY_PATH).
#
# Output: target/cuda/dist/{intuitor,intuitor-bench,device-tests}.xz, stripped and xz-compressed (python3's lzma can unpack them there; carried to the
# GPU machine by the `device` tool; they must stay under 64 MiB together), plus needs.txt listing
# the shared libraries and the newest glibc symbol version they require.
#
# Usage: bash scripts/build_cuda.sh           full build (about 20 minutes cold on 2 cores)
#        bash scripts/build_cuda.sh --check   `cargo check --features cuda` only (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-build}
case "$mode" in build | --check) ;; *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

root=$PWD/target/cuda
wheels=(
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
)
stamp="$root/root/.wheels-$(printf '%s\n' "${wheels[@]}" | sha256sum | cut -c1-16)"
cuda=$root/root/nvidia/cu13
if [ ! -e "$stamp" ]; then
    echo "== fetching the CUDA 13.0 wheels into $root"
    rm -rf "$root/root" "$root/wheels"
    mkdir -p "$root/wheels" "$root/root"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 \
        -d "$root/wheels" "${wheels[@]}"
    for w in "$root"/wheels/*.whl; do python3 -m zipfile -e "$w" "$root/root/"; done
    chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/*
    # Linker names for the versioned libraries the wheels ship.
    for l in cudart.so.13 cublas.so.13 cublasLt.so.13 curand.so.10 nvrtc.so.13; do
        ln -sf "lib$l" "$cuda/lib/lib${l%.so.*}.so"
    done
    rm -rf "$root/wheels"
    touch "$stamp"
fi

# The stub driver library: every cu* function cudarc's driver bindings declare, as a no-op.
stubs=$cuda/lib/stubs
if [ ! -e "$stubs/libcuda.so" ]; then
    find_cudarc() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 2>/dev/null | head -n1; }
    cudarc=$(find_cudarc)
    [ -n "$cudarc" ] || { cargo fetch -q && cudarc=$(find_cudarc); }
    mkdir -p "$stubs"
    grep -oE '^ +fn (cu[A-Za-z0-9_]+)\(' "$cudarc/src/driver/sys/mod.rs" |
        sed -E 's/^ +fn (cu[A-Za-z0-9_]+)\(/void \1(void) {}/' | sort -u >"$stubs/libcuda.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda.c"
fi

export PATH=$cuda/bin:$PATH CUDA_HOME=$cuda CUDA_PATH=$cuda CUDA_COMPUTE_CAP=90
export LIBRARY_PATH=$cuda/lib:$stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
export CARGO_TARGET_DIR=$root/build
nvcc --version | grep -q 'release 13.0' || {
    echo "error: $cuda/bin/nvcc is not CUDA 13.0" >&2
    exit 1
}

if [ "$mode" = --check ]; then
    cargo check --release --features cuda --all-targets
    exit 0
fi

cargo build --release --features cuda --bins
# The device tests (tests/device.rs) as one executable, run there with INTUITOR_TEST_DEVICE=cuda.
device_test=$(cargo test --release --features cuda --test device --no-run --message-format=json |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "device" and m.get("executable"):
        print(m["executable"])')
dist=$root/dist
rm -rf "$dist"
mkdir -p "$dist"
cp "$CARGO_TARGET_DIR/release/intuitor" "$CARGO_TARGET_DIR/release/intuitor-bench" "$dist/"
cp "$device_test" "$dist/device-tests"
for b in intuitor intuitor-bench device-tests; do
    strip "$dist/$b"
    xz -9 -T0 -k -f "$dist/$b"
done
{
    echo "shared libraries:"
    readelf -d "$dist/intuitor" "$dist/intuitor-bench" "$dist/device-tests" | grep NEEDED | sort -u
    echo "newest glibc symbol version:"
    objdump -T "$dist/intuitor" "$dist/intuitor-bench" "$dist/device-tests" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -n1
    echo "newest libstdc++ symbol version:"
    objdump -T "$dist/intuitor" "$dist/intuitor-bench" "$dist/device-tests" | grep -oE 'GLIBCXX_[0-9.]+' | sort -uV | tail -n1
} >"$dist/needs.txt"
cat "$dist/needs.txt"
ls -l "$dist"
total=$(cat "$dist"/*.xz | wc -c)
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
    echo "error: the compressed binaries are $total bytes, over the 64 MiB the device tool carries" >&2
    exit 1
fi
rm -f "$dist/intuitor" "$dist/intuitor-bench" "$dist/device-tests"
echo "built: $dist/{intuitor,intuitor-bench,device-tests}.xz ($total bytes together)"
