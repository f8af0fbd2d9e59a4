"""The layers around a recurrent network: Linear (the output head) and Embedding (the input table).

They follow the conventions of the RNN modules (:mod:`minirnn.modules`): NumPy arrays in and
out, PyTorch's parameter names (``weight``, ``bias``), shapes and initialization, ``forward``
records what its backward needs on a last-in-first-out tape (nothing under
:class:`minirnn.no_grad`), ``backward`` pops the latest entry and *accumulates* the parameter
gradients into ``.grads``; ``zero_grad()`` clears them.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Optional

import numpy as np

from ._grad_mode import is_grad_enabled
from ._validation import check_array, check_bool, check_dtype, check_shape, check_size
from .modules import _Module

__all__ = ["Linear", "Embedding"]


class _Layer(_Module):
    """Parameters, gradients, the tape and the version counter of a layer.

    The shared parameter contract: ``_param_version`` is an int that every API path changing a
    parameter bumps through ``_parameters_changed()`` (assignment, ``load_state_dict``,
    optimizer steps); assigning a parameter (``layer.weight = arr``) copies ``arr`` into the
    existing array after the checks ``load_state_dict`` makes, so references held elsewhere
    (optimizers) stay valid.
    """

    _param_version = 0

    def _set_parameters(self, params: dict) -> None:
        self._params = params
        self.grads = {name: np.zeros_like(p) for name, p in params.items()}
        self._tape = []
        self.training = True
        self._param_version = 0

    def _parameters_changed(self) -> None:
        """Record that the parameters changed (bumps ``_param_version``)."""
        self._param_version += 1

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            # copy in place after load_state_dict's checks (it bumps the version)
            self.load_state_dict({**params, name: value})
            return
        object.__setattr__(self, name, value)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy parameters in, strictly, as :meth:`minirnn.LSTM.load_state_dict`: every key
        must be present, none unexpected, every shape equal; values are cast to the layer's
        dtype. Nothing changes when a check fails."""
        super().load_state_dict(state_dict)       # (bumps _param_version)

    def _pop(self) -> dict:
        return self._tape.pop()

    def __repr__(self) -> str:
        s = f"{type(self).__name__}({self.extra_repr()}"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype}"
        return s + ")"

    def extra_repr(self) -> str:
        return ""


class Linear(_Layer):
    """Applies an affine transformation to the last axis: ``y = x W^T + b``.

    Args:
        in_features: size of each input sample (``H_in``).
        out_features: size of each output sample (``H_out``).
        bias: if False, the layer has no ``bias`` (``layer.bias is None``). Default True.
        dtype: ``numpy.float32`` (default) or ``numpy.float64``; inputs must have exactly this
            dtype (another is a ``TypeError``, never a silent cast).
        seed: seed (or ``numpy.random.Generator``) for ``numpy.random.default_rng``, which
            draws the initial parameters.

    Shapes:
        input: ``(*, H_in)``, ``*`` any number of leading axes (none: one unbatched sample).
        output: ``(*, H_out)``.

    Parameters:
        weight: ``(out_features, in_features)``.
        bias: ``(out_features,)``.

    Initialization (PyTorch's): ``weight`` and ``bias`` from U(-k, k), k = 1/sqrt(in_features)
    (``k = 0`` for ``in_features = 0``), drawn in that order. PyTorch calls this
    ``kaiming_uniform_(a=sqrt(5))``, which is the same bound.

    Backward: ``grad_input = layer.backward(grad_output)`` backpropagates the latest forward
    not yet backpropagated and accumulates ``grads["weight"] += grad_output^T x`` and
    ``grads["bias"] += sum of grad_output`` over the leading axes.

    Example::

        >>> head = minirnn.Linear(20, 30)
        >>> y = head(np.ones((128, 20), dtype=np.float32))
        >>> y.shape
        (128, 30)
    """

    _absent_parameters = ("bias",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype: Any = np.float32, seed: Any = None) -> None:
        self.in_features = check_size("in_features", in_features, allow_zero=True)
        self.out_features = check_size("out_features", out_features, allow_zero=True)
        self.dtype = check_dtype(dtype)
        has_bias = check_bool("bias", bias)
        rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        params = {"weight": rng.uniform(-k, k, size=(self.out_features, self.in_features))}
        if has_bias:
            params["bias"] = rng.uniform(-k, k, size=(self.out_features,))
        self._set_parameters({n: p.astype(self.dtype) for n, p in params.items()})

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={'bias' in self._params}")

    def forward(self, input: np.ndarray) -> np.ndarray:
        """``input @ weight.T + bias`` on the last axis. See the class docstring for shapes."""
        check_array("Linear", "input", input, self.dtype)
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input.shape[-1] must be in_features={self.in_features}, "
                             f"got input of shape {input.shape}")
        y = input @ self._params["weight"].T                 # y = x W^T
        b = self._params.get("bias")
        if b is not None:
            y += b                                           #     + b
        if is_grad_enabled():
            self._tape.append(dict(input=input, shape=y.shape))
        return y

    def backward(self, grad_output: Optional[np.ndarray] = None) -> np.ndarray:
        """Backpropagate the latest forward not yet backpropagated.

        ``grad_output``: gradient of the loss w.r.t. the output (the output's shape), or None
        (zeros). Accumulates into ``grads``; returns the gradient w.r.t. the input.
        """
        entry = self._latest_tape_entry()
        shape = entry["shape"]
        if grad_output is None:
            grad_output = np.zeros(shape, dtype=self.dtype)
        check_array("Linear", "grad_output", grad_output, self.dtype)
        check_shape("Linear", "grad_output", grad_output, shape)
        self._pop()
        x = entry["input"]
        W = self._params["weight"]
        go2 = grad_output.reshape(-1, self.out_features)      # (M, H_out), M = prod(*)
        x2 = x.reshape(-1, self.in_features)                  # (M, H_in)
        self.grads["weight"] += go2.T @ x2                    # dW = dy^T x
        if "bias" in self.grads:
            # db = sum over rows of dy (summed in float64: float32 sums of many rows drift)
            self.grads["bias"] += go2.sum(axis=0, dtype=np.float64).astype(self.dtype)
        return grad_output @ W                                # dx = dy W


class Embedding(_Layer):
    """A lookup table: row ``i`` of ``weight`` is the embedding of index ``i``.

    Args:
        num_embeddings: size of the dictionary (``V``).
        embedding_dim: size of each embedding vector (``E``).
        padding_idx: if given, the row ``weight[padding_idx]`` starts at zero and receives no
            gradient, so it stays whatever it is (a "pad" entry). Negative values count from
            the end (``padding_idx + num_embeddings``), as PyTorch. Must be in
            ``[-num_embeddings, num_embeddings)``. Default None.
        dtype: ``numpy.float32`` (default) or ``numpy.float64``.
        seed: seed (or ``numpy.random.Generator``) for ``numpy.random.default_rng``.

    Shapes: input, an integer array of any shape ``(*)``, each entry in
    ``[0, num_embeddings)`` (anything else is an ``IndexError``; a non-integer array a
    ``TypeError``); output ``(*, E)``.

    Parameters:
        weight: ``(num_embeddings, embedding_dim)``.

    Initialization (PyTorch's): ``weight`` from N(0, 1), then the ``padding_idx`` row set to 0.

    Backward: ``layer.backward(grad_output)`` accumulates into ``grads["weight"]`` each
    output row's gradient at its index (indices that repeat add up), the ``padding_idx`` row
    excepted; it returns None (integer indices have no gradient).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: Optional[int] = None, *, dtype: Any = np.float32,
                 seed: Any = None) -> None:
        self.num_embeddings = check_size("num_embeddings", num_embeddings, allow_zero=True)
        self.embedding_dim = check_size("embedding_dim", embedding_dim, allow_zero=True)
        self.dtype = check_dtype(dtype)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
                raise TypeError(f"padding_idx should be an int or None, got "
                                f"{type(padding_idx).__name__}")
            padding_idx = int(padding_idx)
            V = self.num_embeddings
            if not -V <= padding_idx < V:
                raise ValueError(f"Padding_idx must be within num_embeddings: padding_idx="
                                 f"{padding_idx} is not in [-{V}, {V})")
            if padding_idx < 0:
                padding_idx += V
        self.padding_idx = padding_idx
        rng = np.random.default_rng(seed)
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim))
        if padding_idx is not None:
            weight[padding_idx] = 0.0
        self._set_parameters({"weight": weight.astype(self.dtype)})

    @property
    def _frozen_rows(self) -> dict:
        """{parameter: rows whose gradient is zero by definition} (for minirnn.gradcheck)."""
        return {} if self.padding_idx is None else {"weight": (self.padding_idx,)}

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"

    def _check_indices(self, input: Any) -> np.ndarray:
        if not isinstance(input, np.ndarray):
            raise TypeError(f"Embedding: input must be a numpy.ndarray of integer indices, got "
                            f"{type(input).__name__}")
        if not np.issubdtype(input.dtype, np.integer):
            raise TypeError(f"Embedding: input must hold integer indices (int64 or int32), got "
                            f"dtype {input.dtype}")
        if input.size:
            lo, hi = int(input.min()), int(input.max())
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                raise IndexError(f"Embedding: index out of range: input holds {bad}, every "
                                 f"index must be in [0, num_embeddings={self.num_embeddings})")
        return input

    def forward(self, input: np.ndarray) -> np.ndarray:
        """Look up ``weight[input]``: shape ``input.shape + (embedding_dim,)``."""
        idx = self._check_indices(input)
        out = self._params["weight"][idx]                    # y[..., :] = W[i, :]
        if is_grad_enabled():
            self._tape.append(dict(input=idx.copy(), shape=out.shape))
        return out

    def backward(self, grad_output: Optional[np.ndarray] = None) -> None:
        """Backpropagate the latest forward not yet backpropagated: scatter-add
        ``grad_output`` into ``grads["weight"]`` at the looked-up rows (the ``padding_idx``
        row excepted). ``grad_output`` has the output's shape (None means zeros). Returns
        None: integer indices have no gradient."""
        entry = self._latest_tape_entry()
        if grad_output is not None:
            check_array("Embedding", "grad_output", grad_output, self.dtype)
            check_shape("Embedding", "grad_output", grad_output, entry["shape"])
        self._pop()
        if grad_output is None:
            return None
        idx = entry["input"].reshape(-1)
        go = grad_output.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = idx != self.padding_idx                    # the pad row gets no gradient
            idx, go = idx[keep], go[keep]
        np.add.at(self.grads["weight"], idx, go)             # dW[i] += dy[n] for i = x[n]
        return None

