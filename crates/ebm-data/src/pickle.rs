//! A small reader for Python pickles of plain data and numpy arrays: enough for the batch files of the
//! downsampled ImageNet (a dict of an `ndarray` and a list of ints), written by `pickle.dump` with protocols 2 to 5.
//!
//! It runs the binary opcodes of the pickle machine without executing anything: globals are kept as names, and
//! only the calls numpy's pickles make are interpreted: `numpy.dtype(descr, ...)`,
//! `numpy.core.multiarray._reconstruct(ndarray, ...)` followed by `BUILD` with the array state (protocols 2 to 4),
//! `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)` (protocol 5), `numpy.core.multiarray.scalar`, and
//! `_codecs.encode(text, 'latin1')` (how protocol 2 stores bytes under Python 3); `numpy._core` works too. Any other
//! call is kept as an opaque object. The text opcodes of protocols 0 and 1 are refused.
//!
//! Containers taken from the memo are copies made when they were memoised, which is exact for the tree-shaped data
//! of these files (the memo is only revisited for shared globals and strings). Every copy is counted, by the memo
//! (`GET`, `PUT`), by `DUP` and by an array made from a byte string: a pickle whose copies would make the data grow
//! past [`copy_budget`] values (a "memo bomb", a few bytes that double a list or a string on every step) is refused
//! before it can exhaust memory. A string, byte copy or array counts as one value per [`BYTES_PER_VALUE`] bytes.

use crate::error::{DataError, Result};
use crate::npy::{Array, Dtype};
use std::collections::HashMap;
use std::rc::Rc;

/// A Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Rc<Vec<u8>>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A global (module, name), not resolved.
    Global(String, String),
    /// A numpy dtype: its type string and byte order once `BUILD` has set it.
    Dtype(String, char),
    /// A numpy array.
    Array(Array),
    /// `_reconstruct(...)` awaiting its `BUILD`.
    PendingArray,
    /// Any other call: the callable and its arguments.
    Object(Box<Value>, Box<Value>),
}

impl Value {
    /// The entry `key` of a dict with string keys (bytes keys, as Python 2 writes them, match too).
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(items) = self else { return None };
        items.iter().find_map(|(k, v)| match k {
            Value::Str(s) if s == key => Some(v),
            Value::Bytes(b) if b.as_slice() == key.as_bytes() => Some(v),
            _ => None,
        })
    }

    /// The string keys of a dict.
    pub fn keys(&self) -> Vec<String> {
        let Value::Dict(items) = self else { return Vec::new() };
        items
            .iter()
            .map(|(k, _)| match k {
                Value::Str(s) => s.clone(),
                Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// A short description of the value's type for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(..) => "global",
            Value::Dtype(..) => "numpy dtype",
            Value::Array(_) => "numpy array",
            Value::PendingArray => "unfinished numpy array",
            Value::Object(..) => "object",
        }
    }
}

/// Unpickles `bytes`; `file` names the source in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<Value> {
    let budget = copy_budget(bytes.len());
    Machine { b: bytes, pos: 0, file, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), budget }.run()
}

/// How many values the memo may copy while reading a pickle of `len` bytes: eight per byte of input plus a
/// million (a genuine pickle of plain data copies only strings and globals).
pub fn copy_budget(len: usize) -> usize {
    len.saturating_mul(8).saturating_add(1 << 20)
}

/// Bytes of a string or an array that count as one value of the copy budget (about the size of a `Value`).
pub const BYTES_PER_VALUE: usize = 32;

/// The values in `v` (itself included), counting no further than `limit`: containers by their items, strings and
/// arrays by their bytes; byte strings are shared, not copied, so they count once.
fn values(v: &Value, limit: usize) -> usize {
    let mut n = 1;
    let mut stack: Vec<&Value> = vec![v];
    while let Some(v) = stack.pop() {
        let kids: &[Value] = match v {
            Value::Str(s) => {
                n += s.len() / BYTES_PER_VALUE;
                &[]
            }
            Value::Array(a) => {
                n += a.bytes().len() / BYTES_PER_VALUE;
                &[]
            }
            Value::Tuple(x) | Value::List(x) => x,
            Value::Dict(items) => {
                for (k, x) in items {
                    n += 2;
                    stack.push(k);
                    stack.push(x);
                }
                &[]
            }
            Value::Object(a, b) => {
                n += 2;
                stack.push(a);
                stack.push(b);
                &[]
            }
            _ => &[],
        };
        n += kids.len();
        stack.extend(kids.iter());
        if n > limit {
            return n;
        }
    }
    n
}

struct Machine<'a> {
    b: &'a [u8],
    pos: usize,
    file: &'a str,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Values the memo may still copy.
    budget: usize,
}

impl Machine<'_> {
    fn bad(&self, at: usize, detail: impl std::fmt::Display) -> DataError {
        DataError::Malformed { file: self.file.to_string(), detail: format!("pickle, byte {at}: {detail}") }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let start = self.pos;
        let end = start.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| DataError::Truncated {
            file: self.file.to_string(),
            detail: format!(
                "the pickle ends at byte {} inside an item of {n} bytes that starts at byte {start}",
                self.b.len()
            ),
        })?;
        self.pos = end;
        Ok(&self.b[start..end])
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
    }

    fn len(&mut self, n: usize) -> Result<usize> {
        let v = self.uint(n)?;
        usize::try_from(v).map_err(|_| self.bad(self.pos, format!("length {v} is too large")))
    }

    /// Charges a copy of `n` values to the copy budget (counted before the copy is made).
    fn charge(&mut self, n: usize, at: usize) -> Result<()> {
        if n > self.budget {
            return Err(self.bad(
                at,
                format!(
                    "the memo copies more than {} values for a pickle of {} bytes (a memo bomb?)",
                    copy_budget(self.b.len()),
                    self.b.len()
                ),
            ));
        }
        self.budget -= n;
        Ok(())
    }

    fn pop(&mut self, at: usize) -> Result<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.bad(at, "pops past a mark"));
        }
        self.stack.pop().ok_or_else(|| self.bad(at, "stack underflow"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Value>> {
        let m = self.marks.pop().ok_or_else(|| self.bad(at, "no mark on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    fn top(&mut self, at: usize) -> Result<&mut Value> {
        let bad = self.bad(at, "stack underflow");
        self.stack.last_mut().ok_or(bad)
    }

    fn text(&mut self, n: usize) -> Result<String> {
        let at = self.pos;
        let raw = self.take(n)?.to_vec();
        String::from_utf8(raw).map_err(|_| self.bad(at, "a string that is not UTF-8"))
    }

    fn line(&mut self) -> Result<String> {
        let at = self.pos;
        let rest = &self.b[self.pos..];
        let nl = rest.iter().position(|&c| c == b'\n').ok_or_else(|| DataError::Truncated {
            file: self.file.to_string(),
            detail: format!("the pickle ends inside a line that starts at byte {at}"),
        })?;
        let s = String::from_utf8_lossy(&rest[..nl]).into_owned();
        self.pos += nl + 1;
        Ok(s)
    }

    fn run(mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = *self.take(1)?.first().expect("one byte");
            match op {
                0x80 => {
                    let proto = self.uint(1)?;
                    if proto > 5 {
                        return Err(self.bad(at, format!("pickle protocol {proto} is newer than 5")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => {
                    let v = self.pop(at)?;
                    return Ok(v);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let budget = self.budget;
                    let n = values(self.top(at)?, budget);
                    self.charge(n, at)?;
                    let v = self.top(at)?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.uint(4)? as u32 as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                b'K' => {
                    let v = self.uint(1)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.uint(2)? as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.len(1)? } else { self.len(4)? };
                    let bytes = self.take(n)?.to_vec();
                    self.stack.push(Value::Int(long(&bytes).ok_or_else(|| self.bad(at, "an integer beyond 64 bits"))?));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.stack.push(Value::Float(v));
                }
                0x8c | b'X' | 0x8d => {
                    let n = match op {
                        0x8c => self.len(1)?,
                        b'X' => self.len(4)?,
                        _ => self.len(8)?,
                    };
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'U' | b'T' | b'C' | b'B' | 0x8e | 0x96 => {
                    // Python 2 strings (U, T) are read as bytes, as `encoding='bytes'` would.
                    let n = match op {
                        b'U' | b'C' => self.len(1)?,
                        b'T' | b'B' => self.len(4)?,
                        _ => self.len(8)?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(Rc::new(bytes)));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n || self.marks.last().is_some_and(|&m| m > self.stack.len() - n) {
                        return Err(self.bad(at, "stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b']' => self.stack.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.stack.push(Value::List(items));
                }
                b'a' => {
                    let v = self.pop(at)?;
                    match self.top(at)? {
                        Value::List(l) => l.push(v),
                        other => {
                            let k = other.kind();
                            return Err(self.bad(at, format!("APPEND to a {k}")));
                        }
                    }
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    match self.top(at)? {
                        Value::List(l) => l.extend(items),
                        other => {
                            let k = other.kind();
                            return Err(self.bad(at, format!("APPENDS to a {k}")));
                        }
                    }
                }
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let d = pairs(items).ok_or_else(|| self.bad(at, "DICT with an odd number of items"))?;
                    self.stack.push(Value::Dict(d));
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    match self.top(at)? {
                        Value::Dict(d) => d.push((k, v)),
                        other => {
                            let k = other.kind();
                            return Err(self.bad(at, format!("SETITEM on a {k}")));
                        }
                    }
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    let kv = pairs(items).ok_or_else(|| self.bad(at, "SETITEMS with an odd number of items"))?;
                    match self.top(at)? {
                        Value::Dict(d) => d.extend(kv),
                        other => {
                            let k = other.kind();
                            return Err(self.bad(at, format!("SETITEMS on a {k}")));
                        }
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(self.bad(at, "STACK_GLOBAL without two strings")),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let v = self.call(callable, args, at)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let obj = self.pop(at)?;
                    let v = self.build(obj, state, at)?;
                    self.stack.push(v);
                }
                b'q' | b'r' | 0x94 => {
                    let key = match op {
                        b'q' => self.uint(1)? as u32,
                        b'r' => self.uint(4)? as u32,
                        _ => self.memo.len() as u32,
                    };
                    let budget = self.budget;
                    let n = values(self.top(at)?, budget);
                    self.charge(n, at)?;
                    let v = self.top(at)?.clone();
                    self.memo.insert(key, v);
                }
                b'h' | b'j' => {
                    let key = if op == b'h' { self.uint(1)? } else { self.uint(4)? } as u32;
                    let Some(v) = self.memo.get(&key) else { return Err(self.bad(at, format!("memo {key} is unset"))) };
                    let n = values(v, self.budget);
                    self.charge(n, at)?;
                    let v = self.memo[&key].clone();
                    self.stack.push(v);
                }
                other => {
                    return Err(self.bad(
                        at,
                        format!("opcode 0x{other:02x} is not supported (not a protocol 2-5 pickle of plain data)"),
                    ))
                }
            }
        }
    }

    /// A call: the numpy and codec functions these files use are interpreted, anything else is kept opaque.
    fn call(&mut self, callable: Value, args: Value, at: usize) -> Result<Value> {
        let Value::Global(module, name) = &callable else {
            return Ok(Value::Object(Box::new(callable), Box::new(args)));
        };
        let numpy = module == "numpy" || module.starts_with("numpy.core") || module.starts_with("numpy._core");
        let args_v = match &args {
            Value::Tuple(v) => v.as_slice(),
            _ => &[],
        };
        match (numpy, module.as_str(), name.as_str()) {
            (true, _, "dtype") => match args_v.first() {
                Some(Value::Str(d)) => Ok(Value::Dtype(d.clone(), '|')),
                _ => Err(self.bad(at, "numpy.dtype without a type string")),
            },
            (true, _, "_reconstruct") => Ok(Value::PendingArray),
            (true, _, "_frombuffer") => match args_v {
                [buf, dtype, Value::Tuple(shape), order] => {
                    if matches!(order, Value::Str(o) if o == "F") {
                        return Err(self.bad(at, "an array in Fortran order is not supported"));
                    }
                    let Value::Bytes(data) = buf else {
                        return Err(self.bad(at, format!("_frombuffer of a {}", buf.kind())));
                    };
                    self.array(dtype, shape, data, at).map(Value::Array)
                }
                _ => Err(self.bad(at, "_frombuffer with unexpected arguments")),
            },
            (true, _, "scalar") => match args_v {
                [dtype, Value::Bytes(data)] => {
                    let a = self.array(dtype, &[], data, at)?;
                    Ok(match a.dtype {
                        Dtype::F32 | Dtype::F64 => Value::Float(a.to_f64()[0]),
                        _ => Value::Int(a.to_i64(self.file)?[0]),
                    })
                }
                _ => Err(self.bad(at, "numpy scalar with unexpected arguments")),
            },
            (false, "_codecs", "encode") => match args_v {
                [Value::Str(s), Value::Str(enc)] if enc == "latin1" || enc == "latin-1" => {
                    let bytes = s
                        .chars()
                        .map(|c| u8::try_from(c as u32).map_err(|_| self.bad(at, "a latin1 string beyond U+00FF")))
                        .collect::<Result<Vec<u8>>>()?;
                    Ok(Value::Bytes(Rc::new(bytes)))
                }
                _ => Ok(Value::Object(Box::new(callable), Box::new(args))),
            },
            _ => Ok(Value::Object(Box::new(callable), Box::new(args))),
        }
    }

    /// `BUILD`: sets the byte order of a dtype, or the state of an array from `_reconstruct`.
    fn build(&mut self, obj: Value, state: Value, at: usize) -> Result<Value> {
        match (obj, state) {
            (Value::Dtype(d, _), Value::Tuple(s)) => {
                let order = match s.get(1) {
                    Some(Value::Str(o)) => o.chars().next().unwrap_or('|'),
                    Some(Value::Bytes(o)) => o.first().map_or('|', |&c| c as char),
                    _ => '|',
                };
                Ok(Value::Dtype(d, order))
            }
            (Value::PendingArray, Value::Tuple(s)) => match &s[..] {
                [_version, Value::Tuple(shape), dtype, fortran, data] => {
                    if matches!(fortran, Value::Bool(true)) {
                        return Err(self.bad(at, "an array in Fortran order is not supported"));
                    }
                    let Value::Bytes(data) = data else {
                        return Err(
                            self.bad(at, format!("array data is a {} (an object array?), not raw bytes", data.kind()))
                        );
                    };
                    self.array(dtype, shape, data, at).map(Value::Array)
                }
                _ => Err(self.bad(at, "an array state that is not (version, shape, dtype, fortran, data)")),
            },
            (obj, _) => Ok(obj), // other objects keep no state we need
        }
    }

    fn array(&mut self, dtype: &Value, shape: &[Value], data: &[u8], at: usize) -> Result<Array> {
        self.charge(1 + data.len() / BYTES_PER_VALUE, at)?;
        let data = data.to_vec();
        let Value::Dtype(d, order) = dtype else {
            return Err(self.bad(at, format!("an array whose dtype is a {}", dtype.kind())));
        };
        let (t, big) = Dtype::parse(d).ok_or_else(|| self.bad(at, format!("array type {d:?} is not plain numeric")))?;
        let big = big || *order == '>';
        let shape = shape
            .iter()
            .map(|v| match v {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                other => Err(self.bad(at, format!("array dimension {other:?}"))),
            })
            .collect::<Result<Vec<usize>>>()?;
        Array::new(t, big && t.size() > 1, shape, data, self.file)
    }
}

/// Little-endian two's complement integer of `LONG1` / `LONG4`.
fn long(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return Some(0);
    }
    if b.len() > 8 {
        return None;
    }
    let mut v = b.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64);
    if b.len() < 8 && b[b.len() - 1] & 0x80 != 0 {
        v |= u64::MAX << (8 * b.len());
    }
    Some(v as i64)
}

fn pairs(items: Vec<Value>) -> Option<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Some(out)
}

/// What a pickle's opcodes ask of an unpickler, counted without building anything: how many values its memo
/// hands out again, and how many opcodes it has. Checked before a third-party reader (candle's, for PyTorch
/// `.pth` files) sees the bytes, since that reader copies memoised values and cannot be bounded from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpcodeCounts {
    pub memo_gets: usize,
    pub opcodes: usize,
}

/// Walks the opcodes of a protocol 2-5 pickle (the ones PyTorch writes, `BINPERSID` included) up to `STOP`.
pub fn count_opcodes(b: &[u8], file: &str) -> Result<OpcodeCounts> {
    let bad = |at: usize, detail: String| DataError::Malformed {
        file: file.to_string(),
        detail: format!("pickle, byte {at}: {detail}"),
    };
    let mut pos = 0usize;
    let mut c = OpcodeCounts { memo_gets: 0, opcodes: 0 };
    let uint = |pos: usize, n: usize| -> Option<u64> {
        b.get(pos..pos.checked_add(n)?).map(|s| s.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
    };
    loop {
        let at = pos;
        let Some(&op) = b.get(pos) else { return Err(bad(at, "ends without STOP".into())) };
        pos += 1;
        c.opcodes += 1;
        // the bytes of the opcode's argument
        let arg: usize = match op {
            b'.' => return Ok(c),
            0x80 | b'K' | b'q' | b'h' | 0x88 | 0x89 => {
                if matches!(op, b'h') {
                    c.memo_gets += 1;
                }
                if matches!(op, 0x88 | 0x89) {
                    0
                } else {
                    1
                }
            }
            b'M' => 2,
            b'J' | b'r' | b'j' => {
                if op == b'j' {
                    c.memo_gets += 1;
                }
                4
            }
            0x95 | b'G' => 8,
            0x8a | b'U' | b'C' | 0x8c => 1 + uint(pos, 1).ok_or_else(|| bad(at, "truncated".into()))? as usize,
            0x8b | b'T' | b'B' | b'X' => 4 + uint(pos, 4).ok_or_else(|| bad(at, "truncated".into()))? as usize,
            0x8d | 0x8e | 0x96 => {
                let n = uint(pos, 8).ok_or_else(|| bad(at, "truncated".into()))?;
                usize::try_from(n).ok().and_then(|n| n.checked_add(8)).ok_or_else(|| bad(at, format!("length {n}")))?
            }
            b'c' => {
                // GLOBAL: two newline-terminated lines
                let mut lines = 0;
                let mut k = pos;
                while lines < 2 {
                    match b.get(k) {
                        Some(b'\n') => lines += 1,
                        Some(_) => {}
                        None => return Err(bad(at, "truncated GLOBAL".into())),
                    }
                    k += 1;
                }
                k - pos
            }
            b'(' | b'0' | b'1' | b'2' | b'N' | b')' | b't' | 0x85 | 0x86 | 0x87 | b']' | b'l' | b'a' | b'e' | b'}'
            | b'd' | b's' | b'u' | 0x93 | b'R' | 0x81 | b'b' | 0x94 | b'Q' | 0x8f | 0x90 | 0x91 | 0x92 | 0x97
            | 0x98 => 0,
            other => return Err(bad(at, format!("opcode 0x{other:02x} is not one of protocols 2-5"))),
        };
        pos = pos.checked_add(arg).filter(|&p| p <= b.len()).ok_or_else(|| bad(at, "truncated argument".into()))?;
    }
}

/// The most memo hand-outs a PyTorch checkpoint's pickle may have (a state dict of thousands of tensors needs a
/// few per tensor).
pub const MAX_TORCH_MEMO_GETS: usize = 200_000;
/// The largest pickle (`data.pkl`) of a PyTorch checkpoint this project reads.
pub const MAX_TORCH_PICKLE: u64 = 64 << 20;

/// Checks a PyTorch checkpoint (`.pth`: a zip with `*/data.pkl`, or a legacy file starting with a pickle) before a
/// third-party reader unpickles it: the pickle must be at most [`MAX_TORCH_PICKLE`] bytes, well formed, and hand
/// out at most [`MAX_TORCH_MEMO_GETS`] memoised values.
pub fn vet_torch_file(path: &std::path::Path) -> Result<()> {
    let file = path.display().to_string();
    let io = |e: std::io::Error| DataError::io(path, e);
    let f = std::fs::File::open(path).map_err(io)?;
    let pkl: Vec<u8> = match zip::ZipArchive::new(std::io::BufReader::new(f)) {
        Ok(mut z) => {
            let name = (0..z.len())
                .filter_map(|i| z.by_index(i).ok().map(|e| e.name().to_string()))
                .find(|n| n.ends_with("data.pkl"))
                .ok_or_else(|| DataError::Malformed {
                    file: file.clone(),
                    detail: "a zip without a data.pkl (not a PyTorch checkpoint)".into(),
                })?;
            let e = z.by_name(&name).map_err(|e| DataError::Malformed { file: file.clone(), detail: e.to_string() })?;
            if e.size() > MAX_TORCH_PICKLE {
                return Err(DataError::Malformed {
                    file,
                    detail: format!(
                        "{name} is {} bytes, more than the {MAX_TORCH_PICKLE} a state dict needs",
                        e.size()
                    ),
                });
            }
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(e, MAX_TORCH_PICKLE + 1), &mut v).map_err(io)?;
            v
        }
        Err(_) => {
            let mut v = Vec::new();
            let f = std::fs::File::open(path).map_err(io)?;
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_TORCH_PICKLE), &mut v).map_err(io)?;
            v
        }
    };
    let c = count_opcodes(&pkl, &file)?;
    if c.memo_gets > MAX_TORCH_MEMO_GETS {
        return Err(DataError::Malformed {
            file,
            detail: format!(
                "its pickle takes {} values from its memo (at most {MAX_TORCH_MEMO_GETS}: a memo bomb?)",
                c.memo_gets
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{'a': [1, -2, 300], 'b': (b'xy', 1.5, None, True)}`, as protocol 2 would write it (by hand).
    #[test]
    fn runs_the_plain_data_opcodes() {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.extend_from_slice(&[0x8c, 1, b'a', b']', b'q', 1, b'(', b'K', 1, b'J']);
        p.extend_from_slice(&(-2i32).to_le_bytes());
        p.extend_from_slice(&[b'M', 0x2c, 0x01, b'e']);
        p.extend_from_slice(&[0x8c, 1, b'b', b'(', b'C', 2, b'x', b'y', b'G']);
        p.extend_from_slice(&1.5f64.to_be_bytes());
        p.extend_from_slice(&[b'N', 0x88, b't', b'u', b'.']);
        let v = parse(&p, "t.pkl").unwrap();
        assert_eq!(v.keys(), vec!["a", "b"]);
        assert_eq!(v.get("a"), Some(&Value::List(vec![Value::Int(1), Value::Int(-2), Value::Int(300)])));
        assert_eq!(
            v.get("b"),
            Some(&Value::Tuple(vec![
                Value::Bytes(Rc::new(b"xy".to_vec())),
                Value::Float(1.5),
                Value::None,
                Value::Bool(true)
            ]))
        );
        assert_eq!(long(&[0xff]), Some(-1));
        assert_eq!(long(&[0x00, 0x80, 0x00]), Some(0x8000));
    }

    #[test]
    fn truncation_and_unknown_opcodes_are_errors() {
        let e = parse(&[0x80, 3, b'B', 10, 0, 0, 0, 1, 2], "cut.pkl").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
        assert!(e.to_string().starts_with("cut.pkl: truncated:"), "{e}");
        let e = parse(b"(lp0\nI1\na.", "text.pkl").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = parse(&[0x80, 2, b'}'], "nostop.pkl").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    }
}
