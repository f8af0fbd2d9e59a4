"""minirnn: exact, readable and fast recurrent networks (Elman RNN, GRU, LSTM) for NumPy.

Behaves like PyTorch's ``torch.nn.RNN/GRU/LSTM`` and ``RNNCell/GRUCell/LSTMCell``:
same parameter names, shapes, order and initialization, same outputs and
gradients, with NumPy arrays in and out.
"""
from ._version import __version__
from ._grad_mode import is_grad_enabled, no_grad
from ._backend_c import release_buffers
from . import _extension
if _extension.kernels is not None:
    from ._kernels import get_num_threads, openmp_enabled, set_num_threads
else:                   # not built: the NumPy path only (import warns, backend="c" explains)
    from ._extension import get_num_threads, openmp_enabled, set_num_threads
    _extension.warn_if_missing()
from .modules import BACKENDS, GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .layers import Embedding, Linear
from .losses import cross_entropy, mse_loss
from .clip import clip_grad_norm_, clip_grad_value_
from . import optim
from .gradcheck import GradcheckError, GradcheckResult, gradcheck
from .freeze import freeze
from .packed import (PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence,
                     pad_sequence, unpack_sequence, unpad_sequence)


__all__ = ["RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell", "no_grad",
           "is_grad_enabled", "BACKENDS", "openmp_enabled", "get_num_threads", "set_num_threads",
           "release_buffers", "PackedSequence", "pack_padded_sequence", "pad_packed_sequence",
           "pack_sequence", "pad_sequence", "unpack_sequence", "unpad_sequence",
           "Linear", "Embedding", "cross_entropy", "mse_loss", "optim", "clip_grad_norm_",
           "clip_grad_value_", "gradcheck", "GradcheckResult", "GradcheckError", "freeze",
           "__version__"]
