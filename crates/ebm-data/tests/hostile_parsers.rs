//! The file parsers on hostile bytes: every mutation of a valid file (flipped, inserted and removed bytes, cut
//! ends, huge length fields) gives a value or an error naming the file, never a panic and never an allocation
//! sized by an unchecked number; and the two known ways to blow memory up through a small file (a pickle "memo
//! bomb", a PyTorch checkpoint whose pickle hands out its memo without end) are refused.

use ebm_data::{idx, pickle};
use proptest::prelude::*;

/// A valid IDX image file: 3 images of 4x5.
fn idx_images() -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5];
    b.extend((0..60).map(|i| i as u8));
    b
}

/// A valid protocol-2 pickle of `{'a': [1, 2], 'b': b'xy'}`.
fn small_pickle() -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
    p.extend([b'X', 1, 0, 0, 0, b'a', b'q', 1, b']', b'q', 2, b'(', b'K', 1, b'K', 2, b'e']);
    p.extend([b'X', 1, 0, 0, 0, b'b', b'C', 2, b'x', b'y', b'u', b'.']);
    p
}

/// A valid .npy of a little-endian uint8 array of shape (2, 3).
fn small_npy() -> Vec<u8> {
    let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }";
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend([1u8, 2, 3, 4, 5, 6]);
    b
}

/// A valid safetensors file of one f32 tensor and one metadata entry.
fn small_safetensors() -> Vec<u8> {
    let mut b = ebm_io::Bundle::new();
    b.insert("w", candle_core::Tensor::new(&[1f32, 2., 3., 4.], &candle_core::Device::Cpu).unwrap());
    b.set_meta("k", "v");
    b.to_bytes().unwrap()
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Cut(usize),
    /// Eight 0xff bytes (a huge little- or big-endian length) written at a position.
    Huge(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let one = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Edit::Flip(i, x)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9)).prop_map(|(i, v)| Edit::Insert(i, v)),
        (any::<usize>(), 1usize..9).prop_map(|(i, n)| Edit::Remove(i, n)),
        any::<usize>().prop_map(Edit::Cut),
        any::<usize>().prop_map(Edit::Huge),
    ];
    proptest::collection::vec(one, 1..4)
}

fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = b.len().max(1);
        match e {
            Edit::Flip(i, x) if !b.is_empty() => b[i % n] ^= x | 1,
            Edit::Insert(i, v) => {
                let at = i % (b.len() + 1);
                b.splice(at..at, v.iter().copied());
            }
            Edit::Remove(i, k) if !b.is_empty() => {
                let at = i % n;
                b.drain(at..(at + k).min(b.len()));
            }
            Edit::Cut(i) => b.truncate(i % n),
            Edit::Huge(i) if !b.is_empty() => {
                let at = i % n;
                for j in at..(at + 8).min(b.len()) {
                    b[j] = 0xff;
                }
            }
            _ => {}
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn idx_never_panics(e in edits()) {
        let b = apply(idx_images(), &e);
        if let Err(err) = idx::parse_images(&b, "f.idx") {
            prop_assert!(err.to_string().contains("f.idx"), "{err}");
        }
        let _ = idx::parse_labels(&b, "f.idx");
    }

    #[test]
    fn pickles_never_panic(e in edits()) {
        let b = apply(small_pickle(), &e);
        if let Err(err) = pickle::parse(&b, "f.pkl") {
            prop_assert!(err.to_string().contains("f.pkl"), "{err}");
        }
        let _ = pickle::count_opcodes(&b, "f.pkl");
    }

    #[test]
    fn npy_never_panics(e in edits()) {
        let b = apply(small_npy(), &e);
        if let Err(err) = ebm_data::npy::read_npy(&b[..], "f.npy") {
            prop_assert!(err.to_string().contains("f.npy"), "{err}");
        }
    }

    #[test]
    fn safetensors_never_panic(e in edits()) {
        let b = apply(small_safetensors(), &e);
        let _ = ebm_io::Bundle::from_bytes(&b, &candle_core::Device::Cpu);
    }

    #[test]
    fn matlab_and_cifar_never_panic(e in edits()) {
        let mut rec = vec![3u8];
        rec.extend((0..3072).map(|i| i as u8));
        let b = apply(rec, &e);
        let _ = ebm_data::cifar::parse(&b, "f.bin", "c10", ebm_data::cifar::CifarFormat::Cifar10);
        let mut m = vec![b' '; 116];
        m.extend([0u8; 8]);
        m.extend([0, 1, b'I', b'M']);
        let _ = ebm_data::matlab::parse(&apply(m, &e), "f.mat");
    }
}

/// `(`, two memo gets of entry 0, LIST, memoised again as entry 0: every round doubles the list's size.
fn memo_bomb(rounds: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..rounds {
        p.extend([b'(', b'h', 0, b'h', 0, b'l', b'q', 0]);
    }
    p.push(b'.');
    p
}

#[test]
fn a_memo_bomb_is_refused_quickly() {
    // 60 rounds would make 2^60 values from 485 bytes
    let t = std::time::Instant::now();
    let err = pickle::parse(&memo_bomb(60), "bomb.pkl").unwrap_err().to_string();
    assert!(err.contains("bomb.pkl") && err.contains("memo"), "{err}");
    assert!(t.elapsed().as_secs_f64() < 5.0, "took {:?}", t.elapsed());
    // a few rounds are an ordinary nested list
    assert!(pickle::parse(&memo_bomb(4), "ok.pkl").is_ok());
}

/// `]` then, every round, DUP and TUPLE2: a tuple of two copies of the last one, so the data doubles with no memo.
fn dup_bomb(rounds: usize) -> Vec<u8> {
    let mut p = vec![0x80, 2, b']'];
    for _ in 0..rounds {
        p.extend([b'2', 0x86]);
    }
    p.push(b'.');
    p
}

/// A 4 KB string (BINUNICODE) memoised once and fetched `gets` times into a list (each fetch copies the string).
fn string_bomb(gets: usize) -> Vec<u8> {
    let mut p = vec![0x80, 4, b'X'];
    p.extend(4096u32.to_le_bytes());
    p.extend([b'x'; 4096]);
    p.extend([0x94, b'(']);
    for _ in 0..gets {
        p.extend([b'h', 0]);
    }
    p.extend([b'l', b'.']);
    p
}

#[test]
fn copies_by_dup_and_of_long_strings_count_against_the_budget() {
    let t = std::time::Instant::now();
    let err = pickle::parse(&dup_bomb(60), "dup.pkl").unwrap_err().to_string();
    assert!(err.contains("dup.pkl") && err.contains("memo bomb"), "{err}");
    assert!(pickle::parse(&dup_bomb(6), "ok.pkl").is_ok());
    // 100k copies of 4 KB would be 400 MB from a 200 KB file
    let err = pickle::parse(&string_bomb(100_000), "strings.pkl").unwrap_err().to_string();
    assert!(err.contains("strings.pkl") && err.contains("memo bomb"), "{err}");
    assert!(pickle::parse(&string_bomb(10), "ok.pkl").is_ok());
    // the input cargo fuzz found (2 GB resident before the fix): refused, not exhausted
    let found = include_bytes!("fixtures/pickle-fuzz-oom-1.bin");
    assert!(pickle::parse(found, "fuzz.pkl").is_err());
    assert!(t.elapsed().as_secs_f64() < 5.0, "took {:?}", t.elapsed());
}

#[test]
fn a_pytorch_file_whose_pickle_hands_out_its_memo_without_end_is_refused() {
    let d = std::env::temp_dir().join(format!("ebm-torch-vet-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let write = |name: &str, pkl: &[u8]| {
        let p = d.join(name);
        let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        z.start_file("archive/data.pkl", zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut z, pkl).unwrap();
        z.finish().unwrap();
        p
    };
    let mut gets = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..300_000 {
        gets.extend([b'h', 0, b'0']);
    }
    gets.push(b'.');
    let bad = write("bomb.pth", &gets);
    let err = pickle::vet_torch_file(&bad).unwrap_err().to_string();
    assert!(err.contains("bomb.pth") && err.contains("memo"), "{err}");
    let ok = write("ok.pth", &small_pickle());
    pickle::vet_torch_file(&ok).unwrap();
    let _ = std::fs::remove_dir_all(&d);
}
