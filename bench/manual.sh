#!/bin/bash
# The manual procedure hvcheck replaces, as an operator pastes it into a root shell on a Debian
# or Ubuntu compute node: "can this host run KVM guests, and do its QEMU instances get KVM?"
# One command per step of the checklist (issue 11, point 8). Each step tolerates a missing tool
# or a failing command, and the script always exits 0: bench/run.py times it with hyperfine
# against `hvcheck --format nagios`, which answers the same question in one command.
#
#   sudo bash bench/manual.sh

have() { command -v "$1" >/dev/null 2>&1; }
step() { printf '\n== %s\n' "$*"; }

step "CPU: virtualization extensions, model, already a guest?"
grep -c -E '\b(vmx|svm)\b' /proc/cpuinfo
grep -o -w -E 'vmx|svm' /proc/cpuinfo | sort -u
grep -m1 'model name' /proc/cpuinfo
grep -m1 -o -w hypervisor /proc/cpuinfo

step "architecture"
uname -m

step "packages"
dpkg -l | grep -E 'qemu|libvirt|nova|cpu-checker|ovmf'

step "users and groups"
grep -E '^(libvirt-qemu|qemu|nova):' /etc/passwd
grep -E '^(kvm|libvirt|libvirt-qemu|qemu):' /etc/group

step "module options"
grep -rsn -E 'kvm|nested' /etc/modprobe.d /lib/modprobe.d /usr/lib/modprobe.d

step "modules loaded"
if have lsmod; then lsmod | grep kvm; else grep kvm /proc/modules; fi

step "kernel log"
dmesg | grep -i kvm

step "kvm-ok"
if have kvm-ok; then kvm-ok; else echo "kvm-ok: not installed (Debian/Ubuntu package cpu-checker)"; fi

step "/dev/kvm"
ls -l /dev/kvm

step "nested virtualization"
cat /sys/module/kvm_intel/parameters/nested /sys/module/kvm_amd/parameters/nested 2>/dev/null

step "libvirt's own validation"
if have virt-host-validate; then
  virt-host-validate qemu
else
  echo "virt-host-validate: not installed (libvirt-clients)"
fi

step "nova's virt_type"
grep -rn virt_type /etc/nova/

step "QEMU processes running with KVM"
ps -ef | grep '[a]ccel=kvm'

exit 0
