# Tillbox: the package that holds the command line and the terminal/relay contract.
__version__ = "0.1.0"


def settle_gc() -> None:
    """Call once a long-running daemon has started: what is alive by then (modules, the app,
    the ORM's metadata) stays alive, so the cyclic collector stops walking it, and young
    objects are collected less often. Reference counting frees nearly all garbage; walking
    the whole start-up heap again and again cost a tenth of the CPU per event on both the
    uplink and the relay (bench/bench_uplink.py)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
