#!/usr/bin/env python3
"""Shows that Debian's Fashion-MNIST files hold exactly upstream's bytes, and prints the SHA-256 of their
decompressed contents that data/manifest.toml records as `content_sha256`.

Debian's `dataset-fashion-mnist` (0.0~git20200523.55506a9-1) ships the four .gz files re-gzipped: the gzip header
lost the original file name and got Debian's time stamp, so the .gz hashes differ from upstream's. The deflate
stream after the 10-byte header is unchanged: putting it back behind a header with upstream's file name (FNAME),
time stamp, XFL 0 and OS 3 (Unix) reproduces, byte for byte, the upstream files whose SHA-256 tensorflow-datasets
4.9.10 publishes (tensorflow_datasets/url_checksums/fashion_mnist.txt). The time stamps below were found by a
search over August 2017; one match per file.

Usage: python3 data/provenance/fashion_mnist_debian.py [/usr/share/datasets/fashion-mnist]
"""
import gzip
import hashlib
import struct
import sys

# file -> (upstream SHA-256 from tensorflow-datasets 4.9.10, upstream gzip mtime)
UPSTREAM = {
    "train-images-idx3-ubyte.gz": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 1504176606),
    "train-labels-idx1-ubyte.gz": ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 1504176606),
    "t10k-images-idx3-ubyte.gz": ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 1504176627),
    "t10k-labels-idx1-ubyte.gz": ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 1504176627),
}

folder = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
ok = True
for name, (want, mtime) in UPSTREAM.items():
    deb = open(f"{folder}/{name}", "rb").read()
    assert deb[:3] == b"\x1f\x8b\x08", name
    rebuilt = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03" + name[:-3].encode() + b"\x00" + deb[10:]
    match = hashlib.sha256(rebuilt).hexdigest() == want
    ok &= match
    content = gzip.decompress(deb)
    print(f"{name}: rebuilt upstream .gz {'matches' if match else 'DOES NOT MATCH'} {want}; "
          f"content {len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()}")
sys.exit(0 if ok else 1)
