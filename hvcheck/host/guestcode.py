"""Part of the live host layer: run a few instructions of guest code under KVM (x86).

After ``KVM_CREATE_VM`` succeeds, ``LiveHost``'s probe calls ``run_real_mode_guest``: one page
of guest memory at guest-physical 0x1000 holding ``out 0x10, al; hlt``, one vCPU in real mode
(CS base 0, IP 0x1000, AL 0x42), and ``KVM_RUN`` until the two exits that code must produce: a
``KVM_EXIT_IO`` (port 0x10, out, one byte, 0x42) and a ``KVM_EXIT_HLT``. This is the sequence of
LWN's "Using the KVM API" (2015) and of QEMU's own start-up, cut to the minimum; it proves that
a vCPU can enter the guest and come back, which ``KVM_CREATE_VM`` alone does not.

Reads and writes nothing on the host besides the VM's own file descriptors; the memory is an
``array`` owned by this process (its address from ``array.buffer_info()``, no ctypes). Every
ioctl number is from include/uapi/linux/kvm.h (KVMIO 0xAE); the structure layouts are the
x86-64 ones from arch/x86/include/uapi/asm/kvm.h.
"""

from __future__ import annotations

import array
import errno as errno_mod
import fcntl
import mmap
import os
import struct
from typing import Any, Optional

KVM_GET_VCPU_MMAP_SIZE = 0xAE04  # _IO(KVMIO, 0x04), on the /dev/kvm fd
KVM_CREATE_VCPU = 0xAE41  # _IO(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION = 0x4020AE46  # _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
KVM_GET_SREGS = 0x8138AE83  # _IOR(KVMIO, 0x83, struct kvm_sregs): 312 bytes on x86
KVM_SET_SREGS = 0x4138AE84  # _IOW(KVMIO, 0x84, struct kvm_sregs)
KVM_SET_REGS = 0x4090AE82  # _IOW(KVMIO, 0x82, struct kvm_regs): 18 x u64
KVM_RUN = 0xAE80  # _IO(KVMIO, 0x80)

KVM_EXIT_IO, KVM_EXIT_HLT, KVM_EXIT_SHUTDOWN = 2, 5, 8
KVM_EXIT_FAIL_ENTRY, KVM_EXIT_INTERNAL_ERROR = 9, 17
_EXIT_NAMES = {
    0: "UNKNOWN",
    KVM_EXIT_IO: "IO",
    KVM_EXIT_HLT: "HLT",
    KVM_EXIT_SHUTDOWN: "SHUTDOWN",
    KVM_EXIT_FAIL_ENTRY: "FAIL_ENTRY",
    KVM_EXIT_INTERNAL_ERROR: "INTERNAL_ERROR",
}
PAGE = 4096
GUEST_ADDR = 0x1000
PORT, VALUE = 0x10, 0x42
CODE = bytes((0xE6, PORT, 0xF4))  # out 0x10, al ; hlt
SREGS_SIZE, REGS_SIZE = 312, 144


def _err(e: OSError) -> str:
    return errno_mod.errorcode.get(e.errno or 0, str(e.errno))


def _exit_name(reason: int) -> str:
    return f"KVM_EXIT_{_EXIT_NAMES.get(reason, str(reason))}"


def run_real_mode_guest(kvm_fd: int, vm_fd: int) -> dict[str, Any]:
    """Run ``out 0x10, al; hlt`` in a fresh vCPU of ``vm_fd``.

    Returns ``{"ok": bool, "stage": str, "error": str | None, "exits": [str, ...]}``; ``stage``
    names the step that failed (``create_vcpu``, ``set_memory``, ``mmap``, ``sregs``, ``regs``,
    ``run``, ``exit_io``, ``exit_hlt``) or is ``done``. Closes what it opens.
    """
    exits: list[str] = []

    def fail(stage: str, error: str) -> dict[str, Any]:
        return {"ok": False, "stage": stage, "error": error, "exits": exits}

    mem = array.array("B", bytes(3 * PAGE))
    addr = mem.buffer_info()[0]
    aligned = (addr + PAGE - 1) & ~(PAGE - 1)  # KVM wants a page-aligned userspace_addr
    off = aligned - addr
    mem[off : off + len(CODE)] = array.array("B", CODE)
    region = struct.pack("=IIQQQ", 0, 0, GUEST_ADDR, PAGE, aligned)
    try:
        fcntl.ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, region)
    except OSError as e:
        return fail("set_memory", f"KVM_SET_USER_MEMORY_REGION: {e.strerror} ({_err(e)})")
    try:
        vcpu = fcntl.ioctl(vm_fd, KVM_CREATE_VCPU, 0)
    except OSError as e:
        return fail("create_vcpu", f"KVM_CREATE_VCPU: {e.strerror} ({_err(e)})")
    run: Optional[mmap.mmap] = None
    try:
        try:
            size = fcntl.ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0)
            run = mmap.mmap(vcpu, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            return fail("mmap", f"mmap of the vCPU's kvm_run: {e.strerror} ({_err(e)})")
        try:
            sregs = bytearray(SREGS_SIZE)
            fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs, True)
            struct.pack_into("=Q", sregs, 0, 0)  # cs.base = 0 (struct kvm_segment cs first)
            struct.pack_into("=H", sregs, 12, 0)  # cs.selector = 0
            fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
        except OSError as e:
            return fail("sregs", f"KVM_GET/SET_SREGS: {e.strerror} ({_err(e)})")
        regs = bytearray(REGS_SIZE)
        struct.pack_into("=Q", regs, 0, VALUE)  # rax
        struct.pack_into("=Q", regs, 16 * 8, GUEST_ADDR)  # rip
        struct.pack_into("=Q", regs, 17 * 8, 0x2)  # rflags: bit 1 is always set
        try:
            fcntl.ioctl(vcpu, KVM_SET_REGS, bytes(regs))
        except OSError as e:
            return fail("regs", f"KVM_SET_REGS: {e.strerror} ({_err(e)})")
        for want in (KVM_EXIT_IO, KVM_EXIT_HLT):
            try:
                fcntl.ioctl(vcpu, KVM_RUN, 0)
            except OSError as e:
                return fail("run", f"KVM_RUN: {e.strerror} ({_err(e)})")
            reason = struct.unpack_from("=I", run, 8)[0]
            if reason == KVM_EXIT_IO:
                direction, width, port, count, data_off = struct.unpack_from("=BBHIQ", run, 32)
                value = run[data_off] if data_off < len(run) else -1
                exits.append(f"IO port {port:#x} {'out' if direction else 'in'} {value:#x}")
                if want != KVM_EXIT_IO or (direction, width, port, count, value) != (
                    1,
                    1,
                    PORT,
                    1,
                    VALUE,
                ):
                    return fail("exit_io", f"unexpected {exits[-1]}")
                continue
            exits.append(_exit_name(reason))
            detail = ""
            if reason == KVM_EXIT_INTERNAL_ERROR:
                sub = struct.unpack_from("=I", run, 32)[0]
                detail = f" (suberror {sub}{': emulation failure' if sub == 1 else ''})"
            stage = "exit_io" if want == KVM_EXIT_IO else "exit_hlt"
            if reason != want:
                return fail(stage, f"expected {_exit_name(want)}, got {exits[-1]}{detail}")
        return {"ok": True, "stage": "done", "error": None, "exits": exits}
    finally:
        if run is not None:
            run.close()
        os.close(vcpu)
