"""Sixteen float32 lanes as one numba value, for kernels that choose their own vectors.

numba leaves vectorisation to LLVM's loop vectoriser, which on the CPUs we run on picks
256-bit vectors, vectorises only innermost loops and falls back to scalar code on short
ones; the Transformer's kernels (`transformer_kernels`) need register tiles and 16-key
blocks that it does not find. Here a `float32x16` is an LLVM `<16 x float>`: one AVX-512
register, or two or four narrower ones on other CPUs, with the same results, since every
operation is elementwise IEEE float32 (no reassociation, no fast-math flags: a fused
multiply-add happens only where `fma` is written).

    acc = load(keys, offset) * q0          # a scalar operand is broadcast
    acc = acc + load(keys, offset + stride) * q1
    store(scores, j, acc)

Loads and stores take a C-contiguous array of any rank and a flat element offset; they
do not check bounds.
"""

from __future__ import annotations

import operator

import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from predictors.transformer_arrays import LANES

_VECTOR = ir.VectorType(ir.FloatType(), LANES)
_INTEGERS = ir.VectorType(ir.IntType(32), LANES)
_HALVES = ir.VectorType(ir.HalfType(), LANES)


def host_has_wide_registers() -> bool:
    """Whether this CPU has 32 vector registers of 512 bits (AVX-512), a float32x16 each."""
    return bool(binding.get_host_cpu_features().get("avx512f", False))


class Float32x16Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="float32x16")


float32x16 = Float32x16Type()


@register_model(Float32x16Type)
class _Float32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _is_float32_array(array) -> bool:
    return (isinstance(array, types.Array) and array.dtype == types.float32
            and array.layout == "C")


def _is_half_array(array) -> bool:
    """An array of IEEE half floats, held as their uint16 bits."""
    return (isinstance(array, types.Array) and array.dtype == types.uint16
            and array.layout == "C")


def _pointer(context, builder, array_type, array, offset, offset_type, vector=_VECTOR):
    data = context.make_array(array_type)(context, builder, array).data
    offset = context.cast(builder, offset, offset_type, types.intp)
    return builder.bitcast(builder.gep(data, [offset]), vector.as_pointer())


@intrinsic
def load(typingctx, array, offset):
    """array.flat[offset : offset + 16], of float32 or of half floats (widened, exactly)."""
    half = _is_half_array(array)
    if not (half or _is_float32_array(array)) or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        if not half:
            return builder.load(_pointer(context, builder, signature.args[0], args[0],
                                         args[1], signature.args[1]), align=4)
        pointer = _pointer(context, builder, signature.args[0], args[0], args[1],
                           signature.args[1], _HALVES)
        return builder.fpext(builder.load(pointer, align=2), _VECTOR)

    return float32x16(array, offset), codegen


@intrinsic
def half_bits(typingctx, value):
    """The uint16 bits of float32 `value` rounded to the nearest half float (ties to even,
    IEEE; values past the half range become infinities)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(value), codegen


def stored_value(array, value):
    """`value` (float32) as `array` holds it: itself, or its half float's bits."""
    return np.float16(value).view(np.uint16) if array.dtype == np.uint16 else value


@overload(stored_value)
def _stored_value(array, value):
    if _is_half_array(array) and value == types.float32:
        return lambda array, value: half_bits(value)
    if _is_float32_array(array) and value == types.float32:
        return lambda array, value: value
    return None


class ConstantTruthType(types.Type):
    """A truth value that numba knows when it compiles: a kernel that takes one is compiled
    once per value, with every branch on it folded away (a plain bool argument would be
    tested at run time, inside the innermost loops)."""

    def __init__(self, value: bool) -> None:
        self.value = value
        super().__init__(name=f"constant_truth({value})")


register_model(ConstantTruthType)(models.OpaqueModel)


@overload(bool)
def _truth(value):
    if isinstance(value, ConstantTruthType):
        truth = value.value
        return lambda value: truth
    return None


def holds_half_floats(array) -> bool:
    """Whether `array` holds half floats, as a ConstantTruthType in a kernel."""
    return array.dtype == np.uint16


@intrinsic
def _holds_half_floats(typingctx, array):
    if not (_is_half_array(array) or _is_float32_array(array)):
        return None

    def codegen(context, builder, signature, args):
        return context.get_constant_null(signature.return_type)

    return ConstantTruthType(_is_half_array(array))(array), codegen


@overload(holds_half_floats)
def _holds_half_floats_overload(array):
    return lambda array: _holds_half_floats(array)


@intrinsic
def store(typingctx, array, offset, vector):
    """array.flat[offset : offset + 16] = vector."""
    if (not _is_float32_array(array) or not isinstance(offset, types.Integer)
            or vector != float32x16):
        return None

    def codegen(context, builder, signature, args):
        pointer = _pointer(context, builder, signature.args[0], args[0], args[1],
                           signature.args[1])
        builder.store(args[2], pointer, align=4)
        return context.get_dummy_value()

    return types.none(array, offset, vector), codegen


@intrinsic
def splat(typingctx, value):
    """All sixteen lanes equal to a float32 scalar."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        lanes = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), args[0],
                                       ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(lanes, lanes, ir.Constant(_INTEGERS, [0] * LANES))

    return float32x16(value), codegen


def _binary(instruction: str):
    @intrinsic
    def operation(typingctx, a, b):
        if a != float32x16 or b != float32x16:
            return None

        def codegen(context, builder, signature, args):
            return getattr(builder, instruction)(*args)

        return float32x16(a, b), codegen

    return operation


_add, _subtract, _multiply, _divide = (_binary(name) for name in ("fadd", "fsub", "fmul",
                                                                   "fdiv"))


def _overload_operator(operator_function, vector_operation) -> None:
    """`a op b` for two vectors, or a vector and a float32 scalar (broadcast)."""

    @overload(operator_function)
    def implementation(a, b):
        if a == float32x16 and b == float32x16:
            return lambda a, b: vector_operation(a, b)
        if a == float32x16 and b == types.float32:
            return lambda a, b: vector_operation(a, splat(b))
        if a == types.float32 and b == float32x16:
            return lambda a, b: vector_operation(splat(a), b)
        return None


for _operator, _operation in ((operator.add, _add), (operator.sub, _subtract),
                              (operator.mul, _multiply), (operator.truediv, _divide)):
    _overload_operator(_operator, _operation)


def _select_on(predicate: str):
    @intrinsic
    def select(typingctx, a, b, if_true, if_false):
        if any(argument != float32x16 for argument in (a, b, if_true, if_false)):
            return None

        def codegen(context, builder, signature, args):
            mask = builder.fcmp_ordered(predicate, args[0], args[1])
            return builder.select(mask, args[2], args[3])

        return float32x16(a, b, if_true, if_false), codegen

    return select


#: if_true where a > b, else if_false, lane by lane (ordered: false for NaN).
select_greater = _select_on(">")
#: if_true where a < b, else if_false.
select_less = _select_on("<")


@overload(max)
def _maximum(a, b):
    """max(a, b) lane by lane, as `a if a > b else b` (one instruction on x86; for equal
    lanes it returns b, which is a, but for the sign of a zero)."""
    if a == float32x16 and b == float32x16:
        return lambda a, b: select_greater(a, b, a, b)
    if a == float32x16 and b == types.float32:
        return lambda a, b: select_greater(a, splat(b), a, splat(b))
    return None


@overload(min)
def _minimum(a, b):
    """min(a, b) lane by lane, as `a if a < b else b`."""
    if a == float32x16 and b == float32x16:
        return lambda a, b: select_less(a, b, a, b)
    return None


def _call_llvm(builder, name: str, args):
    """A call of LLVM's `name` intrinsic on float32x16 arguments."""
    function_type = ir.FunctionType(_VECTOR, [_VECTOR] * len(args))
    function = cgutils.get_or_insert_function(builder.module, function_type,
                                              f"{name}.v{LANES}f32")
    return builder.call(function, args)


def _unary_intrinsic(name: str):
    @intrinsic
    def operation(typingctx, a):
        if a != float32x16:
            return None

        def codegen(context, builder, signature, args):
            return _call_llvm(builder, name, args)

        return float32x16(a), codegen

    return operation


floor = _unary_intrinsic("llvm.floor")
absolute = _unary_intrinsic("llvm.fabs")


@intrinsic
def copysign(typingctx, magnitude, sign):
    """|magnitude| with the sign bit of `sign`, lane by lane."""
    if magnitude != float32x16 or sign != float32x16:
        return None

    def codegen(context, builder, signature, args):
        return _call_llvm(builder, "llvm.copysign", args)

    return float32x16(magnitude, sign), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a·b + c with one rounding (IEEE fusedMultiplyAdd), lane by lane, or of three float32
    scalars."""
    if all(argument == types.float32 for argument in (a, b, c)):
        def scalar(context, builder, signature, args):
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.FloatType(), [ir.FloatType()] * 3),
                "llvm.fma.f32")
            return builder.call(function, args)

        return types.float32(a, b, c), scalar
    if a != float32x16 or b != float32x16 or c != float32x16:
        return None

    def codegen(context, builder, signature, args):
        return _call_llvm(builder, "llvm.fma", args)

    return float32x16(a, b, c), codegen


@intrinsic
def power_of_two(typingctx, whole, bias):
    """2^(whole + bias − 127) from its exponent bits, for integral `whole` with
    1 ≤ whole + bias ≤ 254 (a normal number, so the result is exact)."""
    if whole != float32x16 or not isinstance(bias, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        exponents = builder.fptosi(args[0], _INTEGERS)
        bias_value = context.cast(builder, args[1], signature.args[1], types.int32)
        biases = builder.insert_element(ir.Constant(_INTEGERS, ir.Undefined), bias_value,
                                        ir.Constant(ir.IntType(32), 0))
        biases = builder.shuffle_vector(biases, biases, ir.Constant(_INTEGERS, [0] * LANES))
        bits = builder.shl(builder.add(exponents, biases),
                           ir.Constant(_INTEGERS, [23] * LANES))
        return builder.bitcast(bits, _VECTOR)

    return float32x16(whole, bias), codegen


def _halves(builder, vector, width):
    low = builder.shuffle_vector(vector, vector, ir.Constant(
        ir.VectorType(ir.IntType(32), width), list(range(width))))
    high = builder.shuffle_vector(vector, vector, ir.Constant(
        ir.VectorType(ir.IntType(32), width), list(range(width, 2 * width))))
    return low, high


@intrinsic
def folded_sum(typingctx, vector):
    """The lanes' sum as a tree of halves: lanes l and l+8 first, then l and l+4, l and
    l+2, and the last two, ((v0+v8)+(v4+v12)) + ((v2+v10)+(v6+v14)) + … in that shape."""
    if vector != float32x16:
        return None

    def codegen(context, builder, signature, args):
        value, width = args[0], LANES // 2
        while width >= 1:
            low, high = _halves(builder, value, width)
            value = builder.fadd(low, high)
            width //= 2
        return builder.extract_element(value, ir.Constant(ir.IntType(32), 0))

    return types.float32(vector), codegen


def _folded_extreme(predicate: str):
    @intrinsic
    def extreme(typingctx, vector):
        if vector != float32x16:
            return None

        def codegen(context, builder, signature, args):
            value, width = args[0], LANES // 2
            while width >= 1:
                low, high = _halves(builder, value, width)
                value = builder.select(builder.fcmp_ordered(predicate, low, high), low, high)
                width //= 2
            return builder.extract_element(value, ir.Constant(ir.IntType(32), 0))

        return types.float32(vector), codegen

    return extreme


#: The largest lane (exact: the order of comparisons cannot change a maximum's value).
largest_lane = _folded_extreme(">=")


@intrinsic
def any_less(typingctx, a, b):
    """Whether a < b in any lane."""
    if a != float32x16 or b != float32x16:
        return None

    def codegen(context, builder, signature, args):
        mask = builder.fcmp_ordered("<", args[0], args[1])
        bits = builder.bitcast(mask, ir.IntType(LANES))
        return builder.icmp_unsigned("!=", bits, ir.Constant(ir.IntType(LANES), 0))

    return types.boolean(a, b), codegen

