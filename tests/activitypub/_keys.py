"""Fixed keys for signature tests: ours (generated once), and the specs' published ones."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

__all__ = [
    "ACTOR_KEY",
    "CAVAGE_TEST_KEY",
    "ED25519_KEY",
    "OTHER_KEY",
    "RFC9421_ED25519_PUBLIC",
    "RFC9421_RSA_PSS_PUBLIC",
]


def _rsa_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _ed25519_private(pem: str) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


def _rsa_public(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _ed25519_public(pem: bytes) -> ed25519.Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    return key


# An actor's RSA-2048 key, as keys.generate_actor_keys() makes them.
ACTOR_KEY = _rsa_private("""-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCIi7swpO2p1Hno
1hsMIovkkfhSKA4ZObLAvq8LA2OMMVpKeJdEwtRvADpTvBQF7Q+wwW+1jJsUcqK7
ELxi1L8KTq4Bb4ZUgOoh4xwxRx2Zts3lGbBu4/WlDJ2MZHfHo8EmY+n4sj2FB8e2
UH+71Lel4wVuLAa7pR7sjEPfNtYNZnjj62jPT67kUiw92spEuwiLiZ42SMYwmRbF
Hh5EPTPqLpHY7ZESmhD94Z5ar71w4bQq7QugxsDoV953xG/hcC08iKAY1XufQQ8n
DKrManHcvp+BVSC0sbP+wP0iay46/BTo6agRx9IDS85xJmqkMjt808OFUMmS7UmA
VpEkUD/BAgMBAAECggEADuf1IYZxsPtiaxf7eCfJzoQeYAaiImAVetveI0VFj+N/
3DcdqVqdAvibBXLX2z1BvB2jzqWItPLeP65gKGhZ6hvEfGDiwNUZaiVfOaRuL26A
u9jB9VsSoQfXZ6D8n/lJD8Iyw6zekSgUJduUFCrQuQ3nVPt+qSupjHB0BNk5RRlQ
uNJi7XMgd4AZdQTFf8p7GPgfv6kM4WsFaQ8vNmM7tqroeCnZQWBIv3qsnq5MaAQH
mw1B43vAWCJyfv3pPZ+YGN4jOAeEtsTn/nH+8p53mHgBc9KkgWUkZ9XttLXq3+7E
gO2ElA0z85hTUk+cd9LhI63sz2PvyMy54jq/0fPLaQKBgQC8y3vg3vH7eDwgB3bK
5Nf7i7ksgBnRI9lROfaWDHBHKThS9o+YIE2pNmvbGxrXKYjju0At08TJitF0hQgq
lpts0fDjAP7XLWD/3io0R6ip5Ge6L3YRrJQEQud+cRlAi+clQjWsbGIyjexVj1y/
KZ+w5pieBxllpq0KLwpMHxXL+QKBgQC5JuRuiziOrsJ1EXo7LGovxuhxHG8fU+WT
y1p586DRy5t04bPiWdHYuJTyqR63Zs5r+8Nt5X7jcXIDZfZVIjlb7Xi1M51q8h+n
QMMs19r+2VgHvC+jPZrvpXAbB40L9OWbfRr5ImWXainFOkMNIrAG/IMvgDPQldKq
mns8kGm0CQKBgG1DcvFk9jUsk9eRmk24fcuGROgdR1PD5Jze5/hVQJHeqEtTiS1o
3Klm5qsLF9CYqDHsiCs9mXFvFuPRrjU/rrofEsO+Kr8L80yCHnjdVB7nIqUdnL6D
27JPqjyCZjP2BBOLKxccLwTFIJcv/mRgSZyPCJrEzw0GlrUDHnmJsAq5AoGAA5RX
6Dcy0bdZNRAwb8JtDx1mUwF8uHtTvea5ihAGtOedysWuR5r67piq8IIKgPsw1G+a
mJ5ONLF1xdEL0RuHRlqx8bbcvTuPFxmubEiECFdFV2jw9tPzEdz97NfZhzil07q4
ccaTdjjsM87riu53vrrVAm8VEVxEJV41MbeNA5kCgYEAlLIZmnVUXVh1P5W+1Ne3
c2cigyfF6u6qUwZ0YRd+PnLrlEHrtvP1IyPYsTRg991o5PqM7VyUnBClHArJPuRJ
j+hcj4sy12p4qVTb2nzpd/IEigKwkoLKplPABqGgxAqslfqn9g0NDBL/znyB0u5B
KtqBHX03a5VC4A24+TQewJo=
-----END PRIVATE KEY-----
""")

# Another actor's key: signatures made with it must not verify with ACTOR_KEY.
OTHER_KEY = _rsa_private("""-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCrpMGzN/WLMpl2
TMDoP/b33SMBCcSvskj9RAjhJ/jGSW3o894vWRzzJaV6Q7jlYcH17yv5GWVnleO6
zwnTMfOY6vU0/8iilIyXjh7WPUgTJRMOIKVwkj9QZlJOd+Zp0i4jlidElX7B8FCr
kgrvXZGnOv7FmVwiGZjb/a5l3BNRXJELzPO/LODA2gKHJrAIR337veb3E/w03jkP
y3+wx3WZZ5MHyQ183DEIHP82Z5nDfDhidrsXVCALyelaOvWWbfzkMwcoBIZhivsO
8ST5HwWGG3Lj3jlT2UBskClUE7GejqzY97Mq0mkt425XwxbBaNjLiMUP1Vmjn+IR
n5o/SUnBAgMBAAECggEACxB6aAbroVOoSG1XYuFH40YLzQC7MnQ0qxbPcVKPtJoX
jeFPT9zXtkv79Pvk/exYtQ8vPEYV0lQumbEuhsDjXT0jUPPk4NrgjgVCszhaEaaq
XTCSv/hXDbC62rh1HIDIkDfl3VCIGxC85bWeIzxaq92ffk9asA898+U2o8KvABrz
Uf38iKkLWF44LtA4J7r+p67Y/q8GLxCxXHLFfI3apAGq3KZHlkzGJ/K2ykyVRd7s
+7NGoDswF4Dm4bWTjMmU5u0keRghgB31Bi34a9jqz5RXATijL+cHLdpoe5L3pAtA
cCLpyhaQlzhmMmW4kjtl7RxXDVJC/gkC8WQFFc+YHQKBgQDl2zJN7oPrmksiDOcw
YoHH1Lo0Lrb8/j6l4Exfd33ac0q2rTOc7+NMeKIRjhqkXJx5C85H2dvKOPLTcVsj
Lx/7Ieew/eApRqzqvGs0J7J0KqOkBxd73eACiOnbSnD4UxTiOMN9Buafb+dEsVET
pbi4FlwkYZkMlO9QLwgl4qOdHwKBgQC/Ko/m93SvmJrLFasSuHnIp3Zz/ul1Ldgc
W4THCnxTkUdiR3yqSgbKXOOh4rTAaYQiBqQ8rw2XaKMw2cH+AvvU0DeFcMYyENQ5
7rH+t9G/+aFd4wofurPKyRi6lLQpsLdj0R8E3MUx36pqarzT4aAYoSk5blKU9NnK
Ia0CsPtdHwKBgQCiOp37kP881051/uNhK/VrQ8IUOHBgiVVQH8nni1+hQcQWwJHw
DwO/IllIyKIXJWIusN1rquDMjnscLyJi58zLo7dyHQ0MNNywZEHJssbp5HpQt8yk
WQnU4Csl4hlvuru/ms6mvKsjFokE251cn5eLHgT0jInH7oolbrxyeM5/gwKBgF+T
agrx4XcBdzLeDH/5l3nIsCJialpZp1jWMNZK2cn2MphiYWPKSwbV1kFT1Ub1+kgA
xhBI/SSb/isoVCMpXrsRtxCSR6U0YMbuHjPZt5ahuhn0r1UZxVY3oJN4UXMelTHk
lfuaXUUILG20G+BbR+3IdZHvJH6wxEqY96UG00XFAoGBAKIwnmP+kP9KTXOFshH7
RrxRrZgEczPxTRq2UJ4KIzp9sORLkOV5LFQkkzrfp8g0GlDpEr6cXRs2w0Q1p9JS
BUmWXj7f6Ng9TDlkVhWACxyLMyWAqWrixtOzNeBnJw6p0lzPWA43ipnv3nj6v2lD
weyJ2aa85DbLb6oXgDb9HhI3
-----END PRIVATE KEY-----
""")

ED25519_KEY = _ed25519_private("""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEz1tGvKX8DUXnAfD2zDRLDBBl6z6NWWYY7EUq0ixI0I
-----END PRIVATE KEY-----
""")

# RFC 9421 appendix B.1.2, "test-key-rsa-pss" (public half).
RFC9421_RSA_PSS_PUBLIC = _rsa_public(b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
2wIDAQAB
-----END PUBLIC KEY-----
""")

# RFC 9421 appendix B.1.4, "test-key-ed25519" (public half).
RFC9421_ED25519_PUBLIC = _ed25519_public(b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
""")

# draft-cavage-http-signatures-12 appendix C, the 1024-bit RSA key with keyId "Test".
CAVAGE_TEST_KEY = _rsa_private("""-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----
""")
