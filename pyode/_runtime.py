"""How JAX runs here: its persistent compilation cache."""

from pathlib import Path


def use_compilation_cache(folder: str | Path) -> None:
    """Let JAX keep every compiled program in `folder`, so that a second process skips compilation.

    Programs holding host callbacks (a counted solve) are not stored; pyode's bare training
    step holds none.
    """
    import jax

    jax.config.update("jax_compilation_cache_dir", str(Path(folder).resolve()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
