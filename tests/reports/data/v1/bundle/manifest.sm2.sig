{
  "algorithm": "SM2-SM3",
  "key_id": "0e2490bfa821d1e43ada295c87e5efcb",
  "manifest_sha256": "dd89691877eb07adaae5c9204b75ae14327097caa87a80e20ea36fd541a87cfa",
  "signature": "8EbE8dmjJj9Pr43BfFeylhb+uM9a/UIXt03i6Tqy8oanO8+QwiXmrX8VCnSAXAkjeJ9rXDYW3EdtV6YybtmAag=="
}
