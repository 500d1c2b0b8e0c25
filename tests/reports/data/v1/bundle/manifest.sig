{
  "algorithm": "Ed25519",
  "key_id": "6b118330e3c47b10d37250ef0d643d7e",
  "manifest_sha256": "dd89691877eb07adaae5c9204b75ae14327097caa87a80e20ea36fd541a87cfa",
  "signature": "H4oW86yQqXS7PIz2Z3pwO2Hk2CANDD2TjNwxSzlD2921u4Qc4moAEsmjl80xaU3170jsy/jkmLPChF725LfKCw=="
}
