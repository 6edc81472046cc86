#!/bin/sh
# Captures what the gpu-nvidia detector reads, on a machine with NVIDIA GPUs, into $OUT/gpu-capture/
# (or ./gpu-capture when OUT is unset). Each command is bounded; a failing one leaves its stderr and exit code.
set -u
dir="${OUT:-.}/gpu-capture"
mkdir -p "$dir"
run() {
  name="$1"; shift
  timeout 20 "$@" >"$dir/$name.out" 2>"$dir/$name.err"
  echo "$?" >"$dir/$name.rc"
}
run nvidia-smi-q-x nvidia-smi -q -x
run nvidia-smi-query nvidia-smi --query-gpu=index,pci.bus_id,uuid,name,temperature.gpu,ecc.errors.uncorrected.volatile.total,retired_pages.pending,clocks_throttle_reasons.active --format=csv,noheader
run nvidia-smi-L nvidia-smi -L
timeout 20 sh -c 'dmesg | grep -i nvrm' >"$dir/dmesg-nvrm.out" 2>"$dir/dmesg-nvrm.err"; echo "$?" >"$dir/dmesg-nvrm.rc"
timeout 20 sh -c 'ls -l /dev/nvidia*' >"$dir/dev-nvidia.out" 2>&1
{ uname -a; date -u; cat /proc/uptime; } >"$dir/host.txt" 2>&1
ls -l "$dir"
