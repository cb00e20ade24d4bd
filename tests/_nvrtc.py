"""A minimal ctypes binding of NVRTC (libnvrtc), enough to compile a source the way CuPy does.

Used by tests/test_cuda_sources.py to prove, without a GPU, that every kernel source
compiles through NVRTC with the options and name expressions the CuPy launcher uses.
libnvrtc comes from the ``nvidia-cuda-nvrtc`` wheel (the ``test`` extra) or a CUDA install.
"""
import ctypes
import glob
import os
import site
import sysconfig


def find_libnvrtc():
    """Path of libnvrtc.so (pip wheel first, then the CUDA toolkit), or None."""
    roots = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    roots += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    patterns = []
    for r in dict.fromkeys(roots):
        patterns += [os.path.join(r, "nvidia", "cu*", "lib", "libnvrtc.so*"),
                     os.path.join(r, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            patterns += [os.path.join(home, "lib64", "libnvrtc.so*"),
                         os.path.join(home, "targets", "*", "lib", "libnvrtc.so*")]
    for pat in patterns:
        hits = sorted(h for h in glob.glob(pat) if "builtins" not in h and "alt" not in h)
        if hits:
            return hits[0]
    return None


class NVRTCError(RuntimeError):
    pass


class NVRTC:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.path = path
        L = self.lib
        L.nvrtcGetErrorString.restype = ctypes.c_char_p
        L.nvrtcGetLoweredName.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]

    def _check(self, rc, what, log=""):
        if rc != 0:
            msg = self.lib.nvrtcGetErrorString(rc).decode()
            raise NVRTCError(f"{what} failed: {msg}\n{log}")

    def version(self):
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return major.value, minor.value

    def compile(self, source, name, options, name_expressions):
        """Compile; return (log, {expression: lowered name}, cubin bytes). Raise NVRTCError on failure."""
        L = self.lib
        prog = ctypes.c_void_p()
        self._check(L.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
                    "nvrtcCreateProgram")
        try:
            for e in name_expressions:
                self._check(L.nvrtcAddNameExpression(prog, e.encode()), f"nvrtcAddNameExpression({e})")
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            rc = L.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            L.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            L.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode(errors="replace").strip()
            self._check(rc, f"nvrtcCompileProgram({name}, {' '.join(options)})", log)
            lowered = {}
            for e in name_expressions:
                out = ctypes.c_char_p()
                self._check(L.nvrtcGetLoweredName(prog, e.encode(), ctypes.byref(out)),
                            f"nvrtcGetLoweredName({e})")
                lowered[e] = out.value.decode()
            n = ctypes.c_size_t()
            self._check(L.nvrtcGetCUBINSize(prog, ctypes.byref(n)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(n.value)
            self._check(L.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            return log, lowered, cubin.raw
        finally:
            L.nvrtcDestroyProgram(ctypes.byref(prog))
