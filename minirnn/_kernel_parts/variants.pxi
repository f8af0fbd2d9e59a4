# minirnn/_kernel_parts/variants.pxi: cell variants: the variant argument parsed into _Var.
# Included by minirnn/_kernels.pyx, in the order listed there (one extension module).

# --------------------------------------------------------------------------- cell variants

# A layer may compute another cell than PyTorch's (minirnn.variants.Variant). The kernels get
# it as ``variant``: None (PyTorch's cell), or a tuple
#     (reset_after, coupled_input_forget, cell_clip or None, reverse, activations)
# with activations None (PyTorch's) or one tuple per direction of (id, alpha, beta) per slot
# (ids: csrc/activations.h = the index in minirnn.variants.ACTIVATIONS; slots LSTM f, g, h,
# GRU f, g, Elman f), and the LSTM's peepholes as a 6th array of each direction's weights
# (weight_peephole (3H,), blocks i, f, o; its gradient the 6th of grads). The time loops
# stay the same loops; a variant adds to them
#   - the variant's rows of the cell (the *_v functions of csrc/{elman,gru,lstm}.h: other
#     activations, the clip, coupled gates, peepholes), whenever the cell is not PyTorch's;
#   - a split recurrent product (GRU with the reset before the product): the step multiplies
#     h_{t-1} by W_hh's r, z rows, the cell computes r, z and q = r * h_{t-1}, a second
#     product multiplies q by W_hn, and the cell finishes n and h_t. Backward: dq = da_n W_hn
#     between the two halves of the cell, then dh_{t-1} += dG_h[r,z] W_hh[r,z]; after the
#     loop, dW_hn = dG_h[n]^T Q over the saved q (S's 4th block) instead of H_prev;
#   - a cell-state input to the gates (peepholes): pointwise in the cell; dp_i, dp_f, dp_o
#     are sums over the steps of dG * c, computed after the loop (_peephole_grad);
#   - the time order of each direction: reversed for direction 1, and for direction 0 of a
#     one-direction layer with ``reverse``.
# Rows that never take a step (batch_sizes[0] < B, empty sequences) need no variant: they
# keep h0/c0 as h_n/c_n, output zeros, and their dh0/dc0 are dhT/dcT.

ctypedef struct _Var:
    bint cells          # the cell is not PyTorch's: the *_v rows
    bint before         # GRU: the reset before the product (the split recurrent product)
    bint peephole       # LSTM: weight_peephole given (the cell-state input to the gates)
    bint pre            # the training forward saves the pre-activations
    bint rev[2]         # direction d runs from the last step to the first
    mr_cell_variant cv[2]


# PyTorch's activation ids per slot (Sigmoid 0, Tanh 1, Relu 2) and the ids whose derivative
# needs the input (LeakyRelu 4, ThresholdedRelu 5, ScaledTanh 6, Elu 8), as
# minirnn.variants.PYTORCH_ACTIVATIONS and DERIVATIVE_FROM_INPUT say
_STD_ACT_IDS = {MODE_RNN_TANH: (1,), MODE_RNN_RELU: (2,), MODE_GRU: (0, 1), MODE_LSTM: (0, 1, 1)}
_ACT_IDS_FROM_INPUT = frozenset((4, 5, 6, 8))
# the same ids as C ints, for the call without a variant (slots past a cell's count unused)
cdef int _STD_ACTS[4][3]
_STD_ACTS[MODE_RNN_TANH][:] = [1, 0, 0]
_STD_ACTS[MODE_RNN_RELU][:] = [2, 0, 0]
_STD_ACTS[MODE_GRU][:] = [0, 1, 0]
_STD_ACTS[MODE_LSTM][:] = [0, 1, 1]


cdef int _parse_variant(int mode, object variant, Py_ssize_t D, bint peephole,
                        _Var *v) except -1:
    """Fill v from the ``variant`` argument (see above) of a layer of D directions."""
    cdef Py_ssize_t d, k
    cdef int n_slots = 2 if mode == MODE_GRU else 3 if mode == MODE_LSTM else 1
    memset(v, 0, sizeof(_Var))
    v.rev[1] = True
    v.peephole = peephole
    if variant is None:
        # PyTorch's cell (the usual case, without a Python object: it runs on every call):
        # its activations are used only for an LSTM with peepholes
        _check(not peephole or mode == MODE_LSTM, "only LSTM takes peepholes")
        v.cells = peephole
        for d in range(D):
            for k in range(n_slots):
                v.cv[d].act[k] = _STD_ACTS[mode][k]
            v.cv[d].std_acts = True
            v.cv[d].clip = INFINITY
        return 0
    std = _STD_ACT_IDS[mode]
    _check(isinstance(variant, tuple) and len(variant) == 5,
           "variant must be None or (reset_after, coupled_input_forget, cell_clip, "
           "reverse, activations)")
    reset_after, coupled, clip, reverse, acts = variant
    _check(reset_after or mode == MODE_GRU, "reset_after=False is a GRU variant")
    _check(not coupled or mode == MODE_LSTM, "coupled_input_forget is an LSTM variant")
    _check(not peephole or mode == MODE_LSTM, "only LSTM takes peepholes")
    _check(clip is None or clip > 0, "cell_clip must be None or > 0")
    _check(not reverse or D == 1, "reverse is for a layer of one direction")
    v.rev[0] = bool(reverse)
    if acts is not None:
        if not (isinstance(acts, tuple) and len(acts) == D
                and all(isinstance(a, tuple) and len(a) == n_slots for a in acts)):
            _fail(f"activations must hold {n_slots} (id, alpha, beta) per direction")
    v.before = not reset_after
    v.cells = (not reset_after or bool(coupled) or clip is not None or acts is not None
               or peephole)
    pre = clip is not None
    for d in range(D):
        for k in range(n_slots):
            act = acts[d][k] if acts is not None else (std[k], 0.0, 0.0)
            if not 0 <= act[0] < MR_N_ACTIVATIONS:
                _fail(f"unknown activation id {act[0]}")
            v.cv[d].act[k] = act[0]
            v.cv[d].alpha[k] = act[1]
            v.cv[d].beta[k] = act[2]
            pre = pre or act[0] in _ACT_IDS_FROM_INPUT
        v.cv[d].std_acts = acts is None or tuple(a[0] for a in acts[d]) == std
        v.cv[d].coupled = bool(coupled)
        v.cv[d].clip = clip if clip is not None else INFINITY
    v.pre = v.cells and pre
    for d in range(D):
        v.cv[d].save_pre = v.pre
    return 0


cdef inline const mr_cell_variant *_cell_variant(const _Var *v, Py_ssize_t d) noexcept nogil:
    """The cell variant of direction d for the time loops: NULL for PyTorch's cell."""
    if not v.cells:
        return NULL
    return &v.cv[d]


cdef Py_ssize_t _saved_width(int mode, const _Var *v) noexcept:
    """SW: the floats saved per step and row, in units of H (S's last axis is SW*H)."""
    if mode == MODE_GRU:
        return 4 + (3 if v.pre else 0)        # r | z | n | gh_n or q (| a_r | a_z | a_n)
    if mode == MODE_LSTM:
        return 5 + (4 if v.pre else 0)        # i | f | g | o | h(c) (| a_i | a_f | a_g | a_o)
    return 1 if v.pre else 0                  # Elman: (a); h_t is in Y


def saved_width(int mode, variant=None):
    """SW of a layer (S is (D, T, B, SW*H) in training), for the cell ``mode`` and
    ``variant`` (the argument of forward_layer)."""
    cdef _Var v
    if not 0 <= mode <= 3:
        _fail(f"unknown mode {mode}")
    _parse_variant(mode, variant, 1 if variant is None or variant[4] is None
                   else len(variant[4]), False, &v)
    return _saved_width(mode, &v)
