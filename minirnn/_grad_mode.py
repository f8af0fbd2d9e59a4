"""``minirnn.no_grad()``: forward passes inside it store nothing for backward.

The flag is thread-local, like PyTorch's, so one thread running inference under
``no_grad`` does not change what another thread's forward records.
"""
import functools
import threading

_state = threading.local()


def is_grad_enabled():
    """True unless the calling thread is inside ``minirnn.no_grad()``."""
    return getattr(_state, "enabled", True)


class no_grad:
    """Context manager (or decorator) in which forward records no tape.

    Use it for inference: it saves the memory of every activation kept for the
    backward, and the time to keep it. A ``backward`` after such a forward finds
    nothing to backpropagate (it raises, it never silently reuses an older tape).
    """

    def __enter__(self):
        self._prev = is_grad_enabled()
        _state.enabled = False
        return self

    def __exit__(self, *exc):
        _state.enabled = self._prev
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)
        return wrapper
