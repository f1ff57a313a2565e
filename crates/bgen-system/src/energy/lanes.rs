//! SIMD lanes: a [`Lane`] is several numbers side by side with the arithmetic the pair kernels
//! need, including `exp` and `ln` as branch-free polynomials (libm's do not vectorise).
//! Two families implement it: AVX2 + FMA registers on x86-64 ([`avx::F64x4`], [`avx::F32x8`],
//! used only where the CPU has them, see [`super::simd`]), and plain arrays [`V`] for any CPU.

// Lane and coordinate loops index several arrays at once, on purpose: they are what vectorises.
#![allow(clippy::needless_range_loop)]

use std::ops::{Add, AddAssign, BitAnd, Div, Mul, Neg, Sub, SubAssign};

/// The element type of a lane: f64 (the double path) or f32 (the mixed path's pair math).
pub trait Real:
    Copy + Default + PartialOrd + AddAssign + Send + Sync + std::fmt::Debug + 'static
{
    /// Lowest argument of `exp` that stays a normal number; smaller ones are clamped to it.
    const EXP_MIN: f64;
    /// Highest argument of `exp`; larger ones are clamped to it.
    const EXP_MAX: f64;
    /// ln 2 split so that n ln2_hi is exact for the exponents in range.
    const LN2_HI: f64;
    const LN2_LO: f64;
    /// Taylor terms of e^r on |r| <= ln2/2, and of 2 atanh(s) on |s| <= 0.172.
    const EXP_TERMS: usize;
    const LN_TERMS: usize;
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
}

impl Real for f64 {
    const EXP_MIN: f64 = -700.0;
    const EXP_MAX: f64 = 709.0;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const EXP_TERMS: usize = 13;
    const LN_TERMS: usize = 11;
    #[inline(always)]
    fn of(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}

impl Real for f32 {
    const EXP_MIN: f64 = -80.0;
    const EXP_MAX: f64 = 88.0;
    const LN2_HI: f64 = 0.693_359_375;
    const LN2_LO: f64 = -2.121_944_400_546_905_7e-4;
    const EXP_TERMS: usize = 8;
    const LN_TERMS: usize = 5;
    #[inline(always)]
    fn of(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
}

/// 1/k! for k = 0..14.
const INV_FACT: [f64; 14] = {
    let mut t = [1.0; 14];
    let mut k = 1;
    while k < 14 {
        t[k] = t[k - 1] / k as f64;
        k += 1;
    }
    t
};

/// `LANES` numbers of type `T` side by side.
pub trait Lane:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    type T: Real;
    /// A lane mask (all ones or all zeros per lane).
    type Mask: Copy + BitAnd<Output = Self::Mask>;
    const LANES: usize;
    /// Whether the type needs AVX2 + FMA (the kernels then run only where the CPU has them).
    const AVX2: bool;
    /// Whether the type needs AVX-512 (F and DQ; the kernels then run only where the CPU has
    /// them).
    const AVX512: bool = false;

    fn splat(v: Self::T) -> Self;
    /// The lanes `s[at..at + LANES]`.
    fn load(s: &[Self::T], at: usize) -> Self;
    /// `s[at..at + LANES] = self`.
    fn store(self, s: &mut [Self::T], at: usize);
    /// 0, 1, ..., LANES - 1.
    fn iota() -> Self;
    /// The lanes' sum, in f64.
    fn sum(self) -> f64;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    /// self * a + b, fused.
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn lt(self, o: Self) -> Self::Mask;
    fn le(self, o: Self) -> Self::Mask;
    /// `a` where `m`, else `b`.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// `self` where `m`, else zero.
    fn or_zero(self, m: Self::Mask) -> Self;
    /// Set in lane l where bit l of `bits` is clear.
    fn clear_bits(bits: u16) -> Self::Mask;
    /// Rounded to the nearest integer.
    fn round(self) -> Self;
    /// 2^n for integer-valued n in the normal exponent range.
    fn pow2(n: Self) -> Self;
    /// (m, e) with self = m 2^e, m in [1, 2), e an integer: for normal positive numbers.
    fn split_exp(self) -> (Self, Self);

    #[inline(always)]
    fn c(v: f64) -> Self {
        Self::splat(Self::T::of(v))
    }
    /// 1 / sqrt(self), to about an ulp.
    #[inline(always)]
    fn rsqrt(self) -> Self {
        Self::c(1.0) / self.sqrt()
    }
    /// `s[at..at + LANES] += self`.
    #[inline(always)]
    fn add_to(self, s: &mut [Self::T], at: usize) {
        (Self::load(s, at) + self).store(s, at)
    }

    /// e^x = 2^n e^r, n = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor series; within 2
    /// ulp, the argument clamped to [EXP_MIN, EXP_MAX].
    #[inline(always)]
    fn exp(self) -> Self {
        let (lo, hi) = (Self::c(Self::T::EXP_MIN), Self::c(Self::T::EXP_MAX));
        let x = Self::select(self.lt(lo), lo, self);
        let x = Self::select(hi.lt(x), hi, x);
        let n = (x * Self::c(std::f64::consts::LOG2_E)).round();
        let r = n.mul_add(
            Self::c(-Self::T::LN2_LO),
            n.mul_add(Self::c(-Self::T::LN2_HI), x),
        );
        let terms = Self::T::EXP_TERMS;
        let mut p = Self::c(INV_FACT[terms]);
        for k in (0..terms).rev() {
            p = p.mul_add(r, Self::c(INV_FACT[k]));
        }
        p * Self::pow2(n)
    }

    /// ln x = e ln 2 + 2 atanh(s), x = 2^e m, m in [sqrt(1/2), sqrt(2)), s = (m - 1)/(m + 1);
    /// within 2 ulp for normal positive x.
    #[inline(always)]
    fn ln(self) -> Self {
        let (m, e) = self.split_exp();
        let big = Self::c(std::f64::consts::SQRT_2).lt(m);
        let m = Self::select(big, m * Self::c(0.5), m);
        let e = Self::select(big, e + Self::c(1.0), e);
        let f = m - Self::c(1.0);
        let s = f / (Self::c(2.0) + f);
        let z = s * s;
        let terms = Self::T::LN_TERMS;
        let mut p = Self::c(1.0 / (2 * terms + 1) as f64);
        for k in (1..terms).rev() {
            p = p.mul_add(z, Self::c(1.0 / (2 * k + 1) as f64));
        }
        let s2 = s + s;
        let lnm = (s2 * z).mul_add(p, s2);
        e.mul_add(
            Self::c(Self::T::LN2_HI),
            e.mul_add(Self::c(Self::T::LN2_LO), lnm),
        )
    }
}

/// `L` lanes of `T` as a plain array: every operation a loop over the lanes (any CPU).
#[derive(Clone, Copy, Debug)]
pub struct V<T, const L: usize>(pub [T; L]);

/// A mask of [`V`].
#[derive(Clone, Copy, Debug)]
pub struct M<const L: usize>(pub [bool; L]);

impl<const L: usize> BitAnd for M<L> {
    type Output = M<L>;
    #[inline(always)]
    fn bitand(mut self, o: M<L>) -> M<L> {
        for l in 0..L {
            self.0[l] &= o.0[l];
        }
        self
    }
}

/// Scalar arithmetic of the array lanes.
pub trait Scalar:
    Real
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn round(self) -> Self;
    fn pow2(self) -> Self;
    fn split_exp(self) -> (Self, Self);
}

impl Scalar for f64 {
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn abs(self) -> f64 {
        f64::abs(self)
    }
    fn mul_add(self, a: f64, b: f64) -> f64 {
        f64::mul_add(self, a, b)
    }
    fn round(self) -> f64 {
        f64::round_ties_even(self)
    }
    fn pow2(self) -> f64 {
        f64::from_bits(((self as i64 + 1023) as u64) << 52)
    }
    fn split_exp(self) -> (f64, f64) {
        let b = self.to_bits();
        let m = f64::from_bits((b & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
        (m, ((b >> 52) & 0x7FF) as f64 - 1023.0)
    }
}

impl Scalar for f32 {
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn abs(self) -> f32 {
        f32::abs(self)
    }
    fn mul_add(self, a: f32, b: f32) -> f32 {
        f32::mul_add(self, a, b)
    }
    fn round(self) -> f32 {
        f32::round_ties_even(self)
    }
    fn pow2(self) -> f32 {
        f32::from_bits(((self as i32 + 127) as u32) << 23)
    }
    fn split_exp(self) -> (f32, f32) {
        let b = self.to_bits();
        let m = f32::from_bits((b & 0x007F_FFFF) | 0x3F80_0000);
        (m, ((b >> 23) & 0xFF) as f32 - 127.0)
    }
}

macro_rules! lanewise {
    ($tr:ident, $f:ident, $op:tt) => {
        impl<T: Scalar, const L: usize> $tr for V<T, L> {
            type Output = V<T, L>;
            #[inline(always)]
            #[allow(clippy::assign_op_pattern)] // T has no assigning operators
            fn $f(mut self, o: V<T, L>) -> V<T, L> {
                for l in 0..L {
                    self.0[l] = self.0[l] $op o.0[l];
                }
                self
            }
        }
    };
}
lanewise!(Add, add, +);
lanewise!(Sub, sub, -);
lanewise!(Mul, mul, *);
lanewise!(Div, div, /);

impl<T: Scalar, const L: usize> Neg for V<T, L> {
    type Output = V<T, L>;
    #[inline(always)]
    fn neg(self) -> V<T, L> {
        self.map(|v| -v)
    }
}
impl<T: Scalar, const L: usize> AddAssign for V<T, L> {
    #[inline(always)]
    fn add_assign(&mut self, o: V<T, L>) {
        *self = *self + o;
    }
}
impl<T: Scalar, const L: usize> SubAssign for V<T, L> {
    #[inline(always)]
    fn sub_assign(&mut self, o: V<T, L>) {
        *self = *self - o;
    }
}

impl<T: Scalar, const L: usize> V<T, L> {
    #[inline(always)]
    fn map(mut self, f: impl Fn(T) -> T) -> V<T, L> {
        for l in 0..L {
            self.0[l] = f(self.0[l]);
        }
        self
    }
    #[inline(always)]
    fn cmp(self, o: V<T, L>, f: impl Fn(T, T) -> bool) -> M<L> {
        let mut m = [false; L];
        for l in 0..L {
            m[l] = f(self.0[l], o.0[l]);
        }
        M(m)
    }
}

impl<T: Scalar, const L: usize> Lane for V<T, L> {
    type T = T;
    type Mask = M<L>;
    const LANES: usize = L;
    const AVX2: bool = false;
    #[inline(always)]
    fn splat(v: T) -> Self {
        V([v; L])
    }
    #[inline(always)]
    fn load(s: &[T], at: usize) -> Self {
        V(s[at..at + L].try_into().unwrap())
    }
    #[inline(always)]
    fn store(self, s: &mut [T], at: usize) {
        s[at..at + L].copy_from_slice(&self.0)
    }
    #[inline(always)]
    fn iota() -> Self {
        let mut v = [T::default(); L];
        for (l, x) in v.iter_mut().enumerate() {
            *x = T::of(l as f64);
        }
        V(v)
    }
    #[inline(always)]
    fn sum(self) -> f64 {
        self.0.iter().map(|v| v.f64()).sum()
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        self.map(T::sqrt)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self.map(T::abs)
    }
    #[inline(always)]
    fn mul_add(mut self, a: Self, b: Self) -> Self {
        for l in 0..L {
            self.0[l] = self.0[l].mul_add(a.0[l], b.0[l]);
        }
        self
    }
    #[inline(always)]
    fn lt(self, o: Self) -> M<L> {
        self.cmp(o, |a, b| a < b)
    }
    #[inline(always)]
    fn le(self, o: Self) -> M<L> {
        self.cmp(o, |a, b| a <= b)
    }
    #[inline(always)]
    fn select(m: M<L>, mut a: Self, b: Self) -> Self {
        for l in 0..L {
            if !m.0[l] {
                a.0[l] = b.0[l];
            }
        }
        a
    }
    #[inline(always)]
    fn or_zero(self, m: M<L>) -> Self {
        Self::select(m, self, Self::splat(T::default()))
    }
    #[inline(always)]
    fn clear_bits(bits: u16) -> M<L> {
        let mut m = [false; L];
        for (l, v) in m.iter_mut().enumerate() {
            *v = (bits >> l) & 1 == 0;
        }
        M(m)
    }
    #[inline(always)]
    fn round(self) -> Self {
        self.map(T::round)
    }
    #[inline(always)]
    fn pow2(n: Self) -> Self {
        n.map(T::pow2)
    }
    #[inline(always)]
    fn split_exp(self) -> (Self, Self) {
        let (mut m, mut e) = (self, self);
        for l in 0..L {
            (m.0[l], e.0[l]) = self.0[l].split_exp();
        }
        (m, e)
    }
}

/// One f64 that counts the floating-point operations done on it (an FMA is two; a division or a
/// square root one; compares, selects and bit operations none), so that running a kernel on it
/// measures the flops per pair that its formulas need. Not for speed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counted(pub f64);

thread_local! {
    static FLOPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Counted {
    /// Floating-point operations counted on this thread since the last call (which resets it).
    pub fn take() -> u64 {
        FLOPS.with(|c| c.replace(0))
    }
    fn tick(n: u64) {
        FLOPS.with(|c| c.set(c.get() + n));
    }
}

macro_rules! counted {
    ($tr:ident, $f:ident, $op:tt) => {
        impl $tr for Counted {
            type Output = Counted;
            fn $f(self, o: Counted) -> Counted {
                Counted::tick(1);
                Counted(self.0 $op o.0)
            }
        }
    };
}
counted!(Add, add, +);
counted!(Sub, sub, -);
counted!(Mul, mul, *);
counted!(Div, div, /);

impl Neg for Counted {
    type Output = Counted;
    fn neg(self) -> Counted {
        Counted(-self.0)
    }
}
impl AddAssign for Counted {
    fn add_assign(&mut self, o: Counted) {
        *self = *self + o;
    }
}
impl SubAssign for Counted {
    fn sub_assign(&mut self, o: Counted) {
        *self = *self - o;
    }
}

impl Lane for Counted {
    type T = f64;
    type Mask = M<1>;
    const LANES: usize = 1;
    const AVX2: bool = false;
    fn splat(v: f64) -> Self {
        Counted(v)
    }
    fn load(s: &[f64], at: usize) -> Self {
        Counted(s[at])
    }
    fn store(self, s: &mut [f64], at: usize) {
        s[at] = self.0;
    }
    fn iota() -> Self {
        Counted(0.0)
    }
    fn sum(self) -> f64 {
        self.0
    }
    fn sqrt(self) -> Self {
        Counted::tick(1);
        Counted(self.0.sqrt())
    }
    fn abs(self) -> Self {
        Counted(self.0.abs())
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        Counted::tick(2);
        Counted(self.0.mul_add(a.0, b.0))
    }
    fn lt(self, o: Self) -> M<1> {
        M([self.0 < o.0])
    }
    fn le(self, o: Self) -> M<1> {
        M([self.0 <= o.0])
    }
    fn select(m: M<1>, a: Self, b: Self) -> Self {
        if m.0[0] {
            a
        } else {
            b
        }
    }
    fn or_zero(self, m: M<1>) -> Self {
        Self::select(m, self, Counted(0.0))
    }
    fn clear_bits(bits: u16) -> M<1> {
        M([bits & 1 == 0])
    }
    fn round(self) -> Self {
        Counted(self.0.round_ties_even())
    }
    fn pow2(n: Self) -> Self {
        Counted(Scalar::pow2(n.0))
    }
    fn split_exp(self) -> (Self, Self) {
        let (m, e) = Scalar::split_exp(self.0);
        (Counted(m), Counted(e))
    }
}

/// AVX2 + FMA registers. Their functions are safe to call only on a CPU with both; the kernels
/// reach them only through a `#[target_feature]` entry taken after the run-time check.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx {
    use super::Lane;
    use std::arch::x86_64::*;
    use std::ops::{Add, AddAssign, BitAnd, Div, Mul, Neg, Sub, SubAssign};

    macro_rules! register {
        ($name:ident, $mask:ident, $reg:ty, $t:ty, $n:expr,
         $set1:ident, $add:ident, $sub:ident, $mul:ident, $div:ident, $and:ident, $xor:ident) => {
            #[derive(Clone, Copy, Debug)]
            pub struct $name(pub $reg);
            #[derive(Clone, Copy, Debug)]
            pub struct $mask(pub $reg);
            impl BitAnd for $mask {
                type Output = $mask;
                #[inline(always)]
                fn bitand(self, o: $mask) -> $mask {
                    unsafe { $mask($and(self.0, o.0)) }
                }
            }
            impl Add for $name {
                type Output = $name;
                #[inline(always)]
                fn add(self, o: $name) -> $name {
                    unsafe { $name($add(self.0, o.0)) }
                }
            }
            impl Sub for $name {
                type Output = $name;
                #[inline(always)]
                fn sub(self, o: $name) -> $name {
                    unsafe { $name($sub(self.0, o.0)) }
                }
            }
            impl Mul for $name {
                type Output = $name;
                #[inline(always)]
                fn mul(self, o: $name) -> $name {
                    unsafe { $name($mul(self.0, o.0)) }
                }
            }
            impl Div for $name {
                type Output = $name;
                #[inline(always)]
                fn div(self, o: $name) -> $name {
                    unsafe { $name($div(self.0, o.0)) }
                }
            }
            impl Neg for $name {
                type Output = $name;
                #[inline(always)]
                fn neg(self) -> $name {
                    unsafe { $name($xor(self.0, $set1(-0.0))) }
                }
            }
            impl AddAssign for $name {
                #[inline(always)]
                fn add_assign(&mut self, o: $name) {
                    *self = *self + o;
                }
            }
            impl SubAssign for $name {
                #[inline(always)]
                fn sub_assign(&mut self, o: $name) {
                    *self = *self - o;
                }
            }
            // SAFETY (all the unsafe blocks of these types): the intrinsics need AVX2 + FMA,
            // which the only callers (the kernels' AVX2 entries) have checked; loads and stores
            // go through bounds-checked slices. The module is private to the crate so that no
            // caller can reach them otherwise.
        };
    }

    register!(
        F64x4,
        M64x4,
        __m256d,
        f64,
        4,
        _mm256_set1_pd,
        _mm256_add_pd,
        _mm256_sub_pd,
        _mm256_mul_pd,
        _mm256_div_pd,
        _mm256_and_pd,
        _mm256_xor_pd
    );
    register!(
        F32x8,
        M32x8,
        __m256,
        f32,
        8,
        _mm256_set1_ps,
        _mm256_add_ps,
        _mm256_sub_ps,
        _mm256_mul_ps,
        _mm256_div_ps,
        _mm256_and_ps,
        _mm256_xor_ps
    );

    impl Lane for F64x4 {
        type T = f64;
        type Mask = M64x4;
        const LANES: usize = 4;
        const AVX2: bool = true;
        #[inline(always)]
        fn splat(v: f64) -> Self {
            unsafe { F64x4(_mm256_set1_pd(v)) }
        }
        #[inline(always)]
        fn load(s: &[f64], at: usize) -> Self {
            unsafe { F64x4(_mm256_loadu_pd(s[at..at + 4].as_ptr())) }
        }
        #[inline(always)]
        fn store(self, s: &mut [f64], at: usize) {
            unsafe { _mm256_storeu_pd(s[at..at + 4].as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn iota() -> Self {
            unsafe { F64x4(_mm256_setr_pd(0.0, 1.0, 2.0, 3.0)) }
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            unsafe {
                let h = _mm_add_pd(
                    _mm256_castpd256_pd128(self.0),
                    _mm256_extractf128_pd::<1>(self.0),
                );
                _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)))
            }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            unsafe { F64x4(_mm256_sqrt_pd(self.0)) }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe { F64x4(_mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0)) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self, b: Self) -> Self {
            unsafe { F64x4(_mm256_fmadd_pd(self.0, a.0, b.0)) }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> M64x4 {
            unsafe { M64x4(_mm256_cmp_pd::<_CMP_LT_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn le(self, o: Self) -> M64x4 {
            unsafe { M64x4(_mm256_cmp_pd::<_CMP_LE_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn select(m: M64x4, a: Self, b: Self) -> Self {
            unsafe { F64x4(_mm256_blendv_pd(b.0, a.0, m.0)) }
        }
        #[inline(always)]
        fn or_zero(self, m: M64x4) -> Self {
            unsafe { F64x4(_mm256_and_pd(self.0, m.0)) }
        }
        #[inline(always)]
        fn clear_bits(bits: u16) -> M64x4 {
            unsafe {
                let b = _mm256_and_si256(
                    _mm256_set1_epi64x(bits as i64),
                    _mm256_setr_epi64x(1, 2, 4, 8),
                );
                M64x4(_mm256_castsi256_pd(_mm256_cmpeq_epi64(
                    b,
                    _mm256_setzero_si256(),
                )))
            }
        }
        #[inline(always)]
        fn round(self) -> Self {
            unsafe {
                F64x4(_mm256_round_pd::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(self.0))
            }
        }
        #[inline(always)]
        fn pow2(n: Self) -> Self {
            unsafe {
                let i = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n.0));
                let e = _mm256_slli_epi64::<52>(_mm256_add_epi64(i, _mm256_set1_epi64x(1023)));
                F64x4(_mm256_castsi256_pd(e))
            }
        }
        #[inline(always)]
        fn split_exp(self) -> (Self, Self) {
            unsafe {
                let b = _mm256_castpd_si256(self.0);
                let m = _mm256_or_si256(
                    _mm256_and_si256(b, _mm256_set1_epi64x(0x000F_FFFF_FFFF_FFFF)),
                    _mm256_set1_epi64x(0x3FF0_0000_0000_0000),
                );
                // the biased exponent (11 bits) as a float: OR it into 2^52's mantissa
                let eb = _mm256_or_si256(
                    _mm256_srli_epi64::<52>(b),
                    _mm256_set1_epi64x(0x4330_0000_0000_0000),
                );
                let e = _mm256_sub_pd(
                    _mm256_castsi256_pd(eb),
                    _mm256_set1_pd(4_503_599_627_371_519.0),
                );
                (F64x4(_mm256_castsi256_pd(m)), F64x4(e))
            }
        }
    }

    impl Lane for F32x8 {
        type T = f32;
        type Mask = M32x8;
        const LANES: usize = 8;
        const AVX2: bool = true;
        #[inline(always)]
        fn splat(v: f32) -> Self {
            unsafe { F32x8(_mm256_set1_ps(v)) }
        }
        #[inline(always)]
        fn load(s: &[f32], at: usize) -> Self {
            unsafe { F32x8(_mm256_loadu_ps(s[at..at + 8].as_ptr())) }
        }
        #[inline(always)]
        fn store(self, s: &mut [f32], at: usize) {
            unsafe { _mm256_storeu_ps(s[at..at + 8].as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn iota() -> Self {
            unsafe { F32x8(_mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)) }
        }
        /// The two halves widened to f64 and added as a tree (no f32 rounding in the sum).
        #[inline(always)]
        fn sum(self) -> f64 {
            unsafe {
                let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(self.0));
                let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self.0));
                F64x4(_mm256_add_pd(lo, hi)).sum()
            }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            unsafe { F32x8(_mm256_sqrt_ps(self.0)) }
        }
        /// The 12-bit hardware estimate and one Newton step y (3 - x y^2) / 2: about 2e-7
        /// relative, in four instructions instead of a square root and a division.
        #[inline(always)]
        fn rsqrt(self) -> Self {
            unsafe {
                let y = _mm256_rsqrt_ps(self.0);
                let xy2 = _mm256_mul_ps(_mm256_mul_ps(self.0, y), y);
                let h = _mm256_mul_ps(y, _mm256_set1_ps(0.5));
                F32x8(_mm256_mul_ps(h, _mm256_sub_ps(_mm256_set1_ps(3.0), xy2)))
            }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe { F32x8(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0)) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self, b: Self) -> Self {
            unsafe { F32x8(_mm256_fmadd_ps(self.0, a.0, b.0)) }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> M32x8 {
            unsafe { M32x8(_mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn le(self, o: Self) -> M32x8 {
            unsafe { M32x8(_mm256_cmp_ps::<_CMP_LE_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn select(m: M32x8, a: Self, b: Self) -> Self {
            unsafe { F32x8(_mm256_blendv_ps(b.0, a.0, m.0)) }
        }
        #[inline(always)]
        fn or_zero(self, m: M32x8) -> Self {
            unsafe { F32x8(_mm256_and_ps(self.0, m.0)) }
        }
        #[inline(always)]
        fn clear_bits(bits: u16) -> M32x8 {
            unsafe {
                let b = _mm256_and_si256(
                    _mm256_set1_epi32(bits as i32),
                    _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128),
                );
                M32x8(_mm256_castsi256_ps(_mm256_cmpeq_epi32(
                    b,
                    _mm256_setzero_si256(),
                )))
            }
        }
        #[inline(always)]
        fn round(self) -> Self {
            unsafe {
                F32x8(_mm256_round_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(self.0))
            }
        }
        #[inline(always)]
        fn pow2(n: Self) -> Self {
            unsafe {
                let i = _mm256_add_epi32(_mm256_cvtps_epi32(n.0), _mm256_set1_epi32(127));
                F32x8(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(i)))
            }
        }
        #[inline(always)]
        fn split_exp(self) -> (Self, Self) {
            unsafe {
                let b = _mm256_castps_si256(self.0);
                let m = _mm256_or_si256(
                    _mm256_and_si256(b, _mm256_set1_epi32(0x007F_FFFF)),
                    _mm256_set1_epi32(0x3F80_0000),
                );
                let e = _mm256_sub_ps(
                    _mm256_cvtepi32_ps(_mm256_srli_epi32::<23>(b)),
                    _mm256_set1_ps(127.0),
                );
                (F32x8(_mm256_castsi256_ps(m)), F32x8(e))
            }
        }
    }
}

/// AVX-512 registers (16 f32 or 8 f64 lanes, masks in mask registers). Their functions are
/// safe to call only on a CPU with AVX-512 F and DQ; the kernels reach them only through a
/// `#[target_feature]` entry taken after the run-time check ([`avx512`]).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::Lane;
    use std::arch::x86_64::*;
    use std::ops::{Add, AddAssign, BitAnd, Div, Mul, Neg, Sub, SubAssign};

    /// Whether this CPU runs the AVX-512 lanes (F, DQ, and AVX2 + FMA for the bonded lanes).
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && super::super::simd::avx2_fma()
    }

    macro_rules! register {
        ($name:ident, $mask:ident, $k:ty, $reg:ty,
         $add:ident, $sub:ident, $mul:ident, $div:ident, $xor:ident, $set1:ident) => {
            #[derive(Clone, Copy, Debug)]
            pub struct $name(pub $reg);
            /// A lane mask: one bit per lane.
            #[derive(Clone, Copy, Debug)]
            pub struct $mask(pub $k);
            impl BitAnd for $mask {
                type Output = $mask;
                #[inline(always)]
                fn bitand(self, o: $mask) -> $mask {
                    $mask(self.0 & o.0)
                }
            }
            impl Add for $name {
                type Output = $name;
                #[inline(always)]
                fn add(self, o: $name) -> $name {
                    unsafe { $name($add(self.0, o.0)) }
                }
            }
            impl Sub for $name {
                type Output = $name;
                #[inline(always)]
                fn sub(self, o: $name) -> $name {
                    unsafe { $name($sub(self.0, o.0)) }
                }
            }
            impl Mul for $name {
                type Output = $name;
                #[inline(always)]
                fn mul(self, o: $name) -> $name {
                    unsafe { $name($mul(self.0, o.0)) }
                }
            }
            impl Div for $name {
                type Output = $name;
                #[inline(always)]
                fn div(self, o: $name) -> $name {
                    unsafe { $name($div(self.0, o.0)) }
                }
            }
            impl Neg for $name {
                type Output = $name;
                #[inline(always)]
                fn neg(self) -> $name {
                    unsafe { $name($xor(self.0, $set1(-0.0))) }
                }
            }
            impl AddAssign for $name {
                #[inline(always)]
                fn add_assign(&mut self, o: $name) {
                    *self = *self + o;
                }
            }
            impl SubAssign for $name {
                #[inline(always)]
                fn sub_assign(&mut self, o: $name) {
                    *self = *self - o;
                }
            }
            // SAFETY (all the unsafe blocks of these types): the intrinsics need AVX-512 F and
            // DQ, which the only callers (the kernels' AVX-512 entries) have checked; loads and
            // stores go through bounds-checked slices.
        };
    }

    register!(
        F64x8,
        K8,
        __mmask8,
        __m512d,
        _mm512_add_pd,
        _mm512_sub_pd,
        _mm512_mul_pd,
        _mm512_div_pd,
        _mm512_xor_pd,
        _mm512_set1_pd
    );
    register!(
        F32x16,
        K16,
        __mmask16,
        __m512,
        _mm512_add_ps,
        _mm512_sub_ps,
        _mm512_mul_ps,
        _mm512_div_ps,
        _mm512_xor_ps,
        _mm512_set1_ps
    );

    impl Lane for F64x8 {
        type T = f64;
        type Mask = K8;
        const LANES: usize = 8;
        const AVX2: bool = false;
        const AVX512: bool = true;
        #[inline(always)]
        fn splat(v: f64) -> Self {
            unsafe { F64x8(_mm512_set1_pd(v)) }
        }
        #[inline(always)]
        fn load(s: &[f64], at: usize) -> Self {
            unsafe { F64x8(_mm512_loadu_pd(s[at..at + 8].as_ptr())) }
        }
        #[inline(always)]
        fn store(self, s: &mut [f64], at: usize) {
            unsafe { _mm512_storeu_pd(s[at..at + 8].as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn iota() -> Self {
            unsafe { F64x8(_mm512_setr_pd(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)) }
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            unsafe { _mm512_reduce_add_pd(self.0) }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            unsafe { F64x8(_mm512_sqrt_pd(self.0)) }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe { F64x8(_mm512_abs_pd(self.0)) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self, b: Self) -> Self {
            unsafe { F64x8(_mm512_fmadd_pd(self.0, a.0, b.0)) }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> K8 {
            unsafe { K8(_mm512_cmp_pd_mask::<_CMP_LT_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn le(self, o: Self) -> K8 {
            unsafe { K8(_mm512_cmp_pd_mask::<_CMP_LE_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn select(m: K8, a: Self, b: Self) -> Self {
            unsafe { F64x8(_mm512_mask_blend_pd(m.0, b.0, a.0)) }
        }
        #[inline(always)]
        fn or_zero(self, m: K8) -> Self {
            unsafe { F64x8(_mm512_maskz_mov_pd(m.0, self.0)) }
        }
        #[inline(always)]
        fn clear_bits(bits: u16) -> K8 {
            K8(!(bits as u8))
        }
        #[inline(always)]
        fn round(self) -> Self {
            unsafe {
                F64x8(_mm512_roundscale_pd::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(self.0))
            }
        }
        #[inline(always)]
        fn pow2(n: Self) -> Self {
            unsafe {
                let i = _mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(n.0));
                let e = _mm512_slli_epi64::<52>(_mm512_add_epi64(i, _mm512_set1_epi64(1023)));
                F64x8(_mm512_castsi512_pd(e))
            }
        }
        #[inline(always)]
        fn split_exp(self) -> (Self, Self) {
            unsafe {
                let b = _mm512_castpd_si512(self.0);
                let m = _mm512_or_si512(
                    _mm512_and_si512(b, _mm512_set1_epi64(0x000F_FFFF_FFFF_FFFF)),
                    _mm512_set1_epi64(0x3FF0_0000_0000_0000),
                );
                // the biased exponent (11 bits) as a float: OR it into 2^52's mantissa
                let eb = _mm512_or_si512(
                    _mm512_srli_epi64::<52>(b),
                    _mm512_set1_epi64(0x4330_0000_0000_0000),
                );
                let e = _mm512_sub_pd(
                    _mm512_castsi512_pd(eb),
                    _mm512_set1_pd(4_503_599_627_371_519.0),
                );
                (F64x8(_mm512_castsi512_pd(m)), F64x8(e))
            }
        }
    }

    impl Lane for F32x16 {
        type T = f32;
        type Mask = K16;
        const LANES: usize = 16;
        const AVX2: bool = false;
        const AVX512: bool = true;
        #[inline(always)]
        fn splat(v: f32) -> Self {
            unsafe { F32x16(_mm512_set1_ps(v)) }
        }
        #[inline(always)]
        fn load(s: &[f32], at: usize) -> Self {
            unsafe { F32x16(_mm512_loadu_ps(s[at..at + 16].as_ptr())) }
        }
        #[inline(always)]
        fn store(self, s: &mut [f32], at: usize) {
            unsafe { _mm512_storeu_ps(s[at..at + 16].as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn iota() -> Self {
            unsafe {
                F32x16(_mm512_setr_ps(
                    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0,
                    15.0,
                ))
            }
        }
        /// The two halves widened to f64 and added as a tree (no f32 rounding in the sum).
        #[inline(always)]
        fn sum(self) -> f64 {
            unsafe {
                let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(self.0));
                let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(self.0),
                )));
                _mm512_reduce_add_pd(_mm512_add_pd(lo, hi))
            }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            unsafe { F32x16(_mm512_sqrt_ps(self.0)) }
        }
        /// The 14-bit hardware estimate and one Newton step y (3 - x y^2) / 2: about 1e-7
        /// relative.
        #[inline(always)]
        fn rsqrt(self) -> Self {
            unsafe {
                let y = _mm512_rsqrt14_ps(self.0);
                let xy2 = _mm512_mul_ps(_mm512_mul_ps(self.0, y), y);
                let h = _mm512_mul_ps(y, _mm512_set1_ps(0.5));
                F32x16(_mm512_mul_ps(h, _mm512_sub_ps(_mm512_set1_ps(3.0), xy2)))
            }
        }
        #[inline(always)]
        fn abs(self) -> Self {
            unsafe { F32x16(_mm512_abs_ps(self.0)) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self, b: Self) -> Self {
            unsafe { F32x16(_mm512_fmadd_ps(self.0, a.0, b.0)) }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> K16 {
            unsafe { K16(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn le(self, o: Self) -> K16 {
            unsafe { K16(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(self.0, o.0)) }
        }
        #[inline(always)]
        fn select(m: K16, a: Self, b: Self) -> Self {
            unsafe { F32x16(_mm512_mask_blend_ps(m.0, b.0, a.0)) }
        }
        #[inline(always)]
        fn or_zero(self, m: K16) -> Self {
            unsafe { F32x16(_mm512_maskz_mov_ps(m.0, self.0)) }
        }
        #[inline(always)]
        fn clear_bits(bits: u16) -> K16 {
            K16(!bits)
        }
        #[inline(always)]
        fn round(self) -> Self {
            unsafe {
                F32x16(_mm512_roundscale_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(self.0))
            }
        }
        #[inline(always)]
        fn pow2(n: Self) -> Self {
            unsafe {
                let i = _mm512_add_epi32(_mm512_cvtps_epi32(n.0), _mm512_set1_epi32(127));
                F32x16(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(i)))
            }
        }
        #[inline(always)]
        fn split_exp(self) -> (Self, Self) {
            unsafe {
                let b = _mm512_castps_si512(self.0);
                let m = _mm512_or_si512(
                    _mm512_and_si512(b, _mm512_set1_epi32(0x007F_FFFF)),
                    _mm512_set1_epi32(0x3F80_0000),
                );
                let e = _mm512_sub_ps(
                    _mm512_cvtepi32_ps(_mm512_srli_epi32::<23>(b)),
                    _mm512_set1_ps(127.0),
                );
                (F32x16(_mm512_castsi512_ps(m)), F32x16(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// exp and ln of a lane type against libm over their ranges, worst error in ulp.
    fn worst<S: Lane>(eps: f64, exp_range: (f64, f64), ln_decades: f64) -> (f64, f64) {
        let n = 100_000;
        let (mut we, mut wl) = (0.0f64, 0.0f64);
        let mut xs = vec![Default::default(); S::LANES];
        let mut ys = xs.clone();
        let mut out = xs.clone();
        for k in (0..n).step_by(S::LANES) {
            for l in 0..S::LANES {
                let t = (k + l) as f64 / n as f64;
                xs[l] = S::T::of(exp_range.0 + (exp_range.1 - exp_range.0) * t);
                ys[l] = S::T::of(10f64.powf(ln_decades * (2.0 * t - 1.0)) * 1.000_123);
            }
            S::load(&xs, 0).exp().store(&mut out, 0);
            for l in 0..S::LANES {
                let want = xs[l].f64().exp();
                we = we.max(((out[l].f64() - want) / want).abs() / eps);
            }
            S::load(&ys, 0).ln().store(&mut out, 0);
            for l in 0..S::LANES {
                let want = ys[l].f64().ln();
                wl = wl.max((out[l].f64() - want).abs() / (want.abs().max(1.0) * eps));
            }
        }
        (we, wl)
    }

    #[test]
    fn exp_and_ln_match_libm() {
        let d = (f64::EPSILON, (-700.0, 709.0), 300.0);
        let s = (f32::EPSILON as f64, (-80.0, 88.0), 30.0);
        let mut results = vec![
            ("V<f64, 4>", worst::<V<f64, 4>>(d.0, d.1, d.2), 2.0),
            ("V<f32, 8>", worst::<V<f32, 8>>(s.0, s.1, s.2), 3.0),
        ];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            results.push(("F64x4", worst::<avx::F64x4>(d.0, d.1, d.2), 2.0));
            results.push(("F32x8", worst::<avx::F32x8>(s.0, s.1, s.2), 3.0));
        }
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            results.push(("F64x8", worst::<avx512::F64x8>(d.0, d.1, d.2), 2.0));
            results.push(("F32x16", worst::<avx512::F32x16>(s.0, s.1, s.2), 3.0));
        }
        for (name, (e, l), tol) in results {
            assert!(e < tol && l < tol, "{name}: exp {e} ulp, ln {l} ulp");
        }
    }
}
