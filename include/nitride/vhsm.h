/*
 * libvhsm — the client library of the Nitride vHSM (vhsmd).
 *
 * Applications use keys that live inside vhsmd; they never hold private or
 * secret key material.  Protocol: docs/vhsm-protocol.md; key model, policy
 * and sealing: docs/vhsm.md.
 *
 * Conventions:
 *  - Functions return VHSM_OK (0) or a negative vhsm_status; vhsm_strerror()
 *    gives its text and vhsm_last_message() the daemon's explanation.
 *  - Output buffers are malloc'ed and handed to the caller (free with
 *    vhsm_buf_free(), which wipes them); outputs are written only on success.
 *  - A vhsm_client is safe to share between threads: requests from several
 *    threads are in flight on one connection at once, and each answer is
 *    matched to its request by id.
 *  - Nothing here logs or exits.
 */
#ifndef NITRIDE_VHSM_H
#define NITRIDE_VHSM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NITRIDE_BUILDING_VHSM)
#define VHSM_API __attribute__((visibility("default")))
#else
#define VHSM_API
#endif
#define VHSM_MUST_CHECK __attribute__((warn_unused_result))

#define VHSM_DEFAULT_SOCKET "/run/vhsmd/vhsmd.sock"

typedef enum vhsm_status {
	VHSM_OK = 0,
	VHSM_E_PROTOCOL = -1,      /* malformed frame or unexpected answer */
	VHSM_E_DENIED = -2,        /* the policy does not allow this caller this operation on this name */
	VHSM_E_NOT_FOUND = -3,     /* no such key (only said to callers allowed to use the name) */
	VHSM_E_EXISTS = -4,        /* a key of that name exists */
	VHSM_E_ARGUMENT = -5,      /* a missing or invalid field */
	VHSM_E_USAGE = -6,         /* the key's usages or type do not allow the operation */
	VHSM_E_BAD_SIGNATURE = -7, /* verify: signature or MAC does not match (a negative answer) */
	VHSM_E_DECRYPT = -8,       /* decrypt/unwrap: authentication failed */
	VHSM_E_UNSUPPORTED = -9,   /* algorithm or key type not supported for this operation */
	VHSM_E_NOMEM = -10,
	VHSM_E_INTERNAL = -11,
	VHSM_E_IO = -12,           /* connection failed or closed */
	VHSM_E_STORE = -13,        /* the sealed store failed; the key was not changed */
	VHSM_E_NOT_ATTESTED = -14, /* the key requires fresh attestation (Case B, nitrided) */
	VHSM_E_TOO_LARGE = -15,    /* a request or answer exceeds the protocol's cap */
	VHSM_E_NOT_EXPORTABLE = -16, /* read of a secret that is not exportable */
	VHSM_E_RETIRED = -17,      /* the key version is retired */
	VHSM_E_UNAVAILABLE = -18   /* Case B: the key could not be provisioned or attested (the
				      message says why: "key X unavailable: <reason>") */
} vhsm_status;

typedef enum vhsm_key_type {
	VHSM_KEY_AES256 = 1,
	VHSM_KEY_HMAC_SHA256 = 2,
	VHSM_KEY_HMAC_SHA384 = 3,
	VHSM_KEY_EC_P256 = 4,
	VHSM_KEY_EC_P384 = 5,
	VHSM_KEY_ED25519 = 6,
	VHSM_KEY_RSA2048 = 7,
	VHSM_KEY_RSA3072 = 8,
	VHSM_KEY_RSA4096 = 9,
	VHSM_KEY_OPAQUE = 10,
	VHSM_KEY_CERT = 11 /* public data: an X.509 certificate (DER), stored beside keys; no usages */
} vhsm_key_type;
#define VHSM_KEY_TYPE_MAX 11
#define VHSM_CERT_MAX 32768u /* largest certificate object */

/* Usages (bits). */
#define VHSM_USAGE_SIGN 0x01u
#define VHSM_USAGE_VERIFY 0x02u
#define VHSM_USAGE_ENCRYPT 0x04u
#define VHSM_USAGE_DECRYPT 0x08u
#define VHSM_USAGE_WRAP 0x10u
#define VHSM_USAGE_UNWRAP 0x20u
#define VHSM_USAGE_MAC 0x40u
#define VHSM_USAGE_DERIVE 0x80u
#define VHSM_USAGE_ALL 0xFFu

/* Flags (bits). */
#define VHSM_FLAG_EXPORTABLE 0x01u /* opaque secrets only: READ_SECRET may return it */
#define VHSM_FLAG_PERSISTENT 0x02u /* sealed into the store; otherwise volatile */
#define VHSM_FLAG_ALL 0x03u

typedef enum vhsm_origin {
	VHSM_ORIGIN_GENERATED = 1,
	VHSM_ORIGIN_PROVISIONED = 2, /* imported, unwrapped, or injected */
	VHSM_ORIGIN_DERIVED = 3      /* ECDH derive */
} vhsm_origin;

/* Signature algorithms.  DEFAULT: ECDSA DER for EC, Ed25519, RSA-PSS for RSA. */
typedef enum vhsm_alg {
	VHSM_ALG_DEFAULT = 0,
	VHSM_ALG_ECDSA_DER = 1,
	VHSM_ALG_ECDSA_RAW = 2, /* r || s, each the curve's size, big-endian */
	VHSM_ALG_ED25519 = 3,
	VHSM_ALG_RSA_PSS = 4,   /* salt length = digest length, MGF1 with the same digest */
	VHSM_ALG_RSA_PKCS1 = 5, /* PKCS#1 v1.5 */
	VHSM_ALG_RSA_OAEP = 6   /* encrypt/decrypt, MGF1 with the same digest */
} vhsm_alg;

/* Digests.  DEFAULT: SHA-384 for P-384, SHA-256 otherwise. */
typedef enum vhsm_hash {
	VHSM_HASH_DEFAULT = 0,
	VHSM_HASH_SHA256 = 1,
	VHSM_HASH_SHA384 = 2,
	VHSM_HASH_SHA512 = 3,
	/* Flag, OR'ed into the hash of sign/verify: DATA is already the digest
	 * (no hashing in vhsmd).  The low bits then name the digest DATA is:
	 *   ECDSA: PREHASHED alone — a 32, 48 or 64-byte digest; PREHASHED|SHAx —
	 *          exactly that digest's length.
	 *   RSA PKCS#1 v1.5: PREHASHED alone — DATA is the DigestInfo (any bytes up
	 *          to k-11), padded as-is (type 1); PREHASHED|SHAx — DATA is the
	 *          digest, vhsmd wraps it in SHAx's DigestInfo.
	 *   RSA-PSS: PREHASHED|SHAx required (salt = MGF1 digest = SHAx).
	 *   Ed25519: refused (VHSM_E_UNSUPPORTED). */
	VHSM_HASH_PREHASHED = 0x100
} vhsm_hash;

/* Key derivation after ECDH (derive).  Whatever the choice, the result becomes
 * a new key object in vhsmd; the shared secret is never returned. */
typedef enum vhsm_kdf {
	VHSM_KDF_HKDF = 0,        /* default: HKDF-SHA-256, info "nitride-vhsm-ecdh" || new name */
	VHSM_KDF_NONE = 1,        /* the shared x-coordinate itself, its leading bytes if longer
				     than the new key (PKCS#11 CKD_NULL) */
	VHSM_KDF_X963_SHA256 = 2, /* ANSI X9.63 KDF over the shared secret and the shared info */
	VHSM_KDF_X963_SHA384 = 3,
	VHSM_KDF_X963_SHA512 = 4
} vhsm_kdf;
#define VHSM_KDF_MAX 4
#define VHSM_KDF_INFO_MAX 1024u /* X9.63 shared info */

/* What a key is, apart from its material. */
typedef struct vhsm_key_info {
	char name[129];
	vhsm_key_type type;
	uint32_t usages;   /* VHSM_USAGE_* */
	uint32_t flags;    /* VHSM_FLAG_* */
	uint32_t version;  /* current version */
	uint32_t versions; /* usable (not retired) versions */
	vhsm_origin origin;
	uint32_t require_attestation; /* maximum age in seconds; 0 = none */
} vhsm_key_info;

/* Attributes of a key an operation creates (generate, import, unwrap, derive). */
typedef struct vhsm_key_spec {
	vhsm_key_type type;
	uint32_t usages;
	uint32_t flags;
	uint32_t require_attestation;
} vhsm_key_spec;

typedef struct vhsm_client vhsm_client;

/* Text for a vhsm_status; never NULL. */
VHSM_API const char *vhsm_strerror(int status);
/* "aes256", "p256", … and back (0 if unknown). */
VHSM_API const char *vhsm_key_type_name(vhsm_key_type t);
VHSM_API vhsm_key_type vhsm_key_type_from_name(const char *s);

/* Connect to vhsmd's Unix socket (NULL: $VHSM_SOCKET, else VHSM_DEFAULT_SOCKET). */
VHSM_API VHSM_MUST_CHECK int vhsm_connect(const char *socket_path, vhsm_client **out);
/* Connect to vhsmd's TLS listener (docs/vhsm.md, "TLS listener") at
 * `address` — "HOST:PORT" or "[IPV6]:PORT", HOST a DNS name or an IP literal —
 * presenting the client certificate chain `cert_file` and its private key
 * `key_file` (PEM; the certificate is what the policy knows the caller by).
 * The server's certificate must chain to a CA in `ca_file` (PEM) and name
 * HOST (a DNS or IP subjectAltName).  TLS 1.2 or newer; connecting and the
 * handshake are bounded (30 s).  Every argument is required.  The client is
 * then used, shared between threads and closed exactly like one from
 * vhsm_connect. */
VHSM_API VHSM_MUST_CHECK int vhsm_connect_tls(const char *address, const char *cert_file,
					      const char *key_file, const char *ca_file,
					      vhsm_client **out);
/* Close and free; NULL-safe.  No other thread may be using the client. */
VHSM_API void vhsm_close(vhsm_client *c);
/* The daemon's message for the calling thread's last failed request ("" if none). */
VHSM_API const char *vhsm_last_message(void);
/* Wipe and free a buffer this library returned; NULL-safe. */
VHSM_API void vhsm_buf_free(void *p, size_t len);

VHSM_API VHSM_MUST_CHECK int vhsm_ping(vhsm_client *c);
VHSM_API VHSM_MUST_CHECK int vhsm_generate(vhsm_client *c, const char *name,
					   const vhsm_key_spec *spec);
/* Import material: raw bytes for AES/HMAC/opaque, PKCS#8 DER for EC/Ed25519/RSA. */
VHSM_API VHSM_MUST_CHECK int vhsm_import(vhsm_client *c, const char *name,
					 const vhsm_key_spec *spec, const uint8_t *material,
					 size_t len);
VHSM_API VHSM_MUST_CHECK int vhsm_delete(vhsm_client *c, const char *name);
/* Keys the caller may use.  *infos: array of *n (caller frees with free()). */
VHSM_API VHSM_MUST_CHECK int vhsm_list(vhsm_client *c, vhsm_key_info **infos, size_t *n);
/* Attributes, and for asymmetric keys the public key (DER SubjectPublicKeyInfo;
 * *spki NULL for symmetric keys).  spki may be NULL if not wanted. */
VHSM_API VHSM_MUST_CHECK int vhsm_get_public(vhsm_client *c, const char *name,
					     vhsm_key_info *info, uint8_t **spki, size_t *spki_len);
/* Sign a message (the vHSM hashes it, except Ed25519 which signs it whole;
 * with VHSM_HASH_PREHASHED in hash, msg is the digest or DigestInfo).
 * *version gets the key version used (may be NULL). */
VHSM_API VHSM_MUST_CHECK int vhsm_sign(vhsm_client *c, const char *name, vhsm_alg alg,
				       vhsm_hash hash, const uint8_t *msg, size_t len,
				       uint8_t **sig, size_t *sig_len, uint32_t *version);
/* Verify with `version` (0 = current).  VHSM_OK if valid, VHSM_E_BAD_SIGNATURE if not.
 * HMAC keys verify a MAC (alg and hash ignored). */
VHSM_API VHSM_MUST_CHECK int vhsm_verify(vhsm_client *c, const char *name, uint32_t version,
					 vhsm_alg alg, vhsm_hash hash, const uint8_t *msg,
					 size_t len, const uint8_t *sig, size_t sig_len);
/* AES-256-GCM (the blob carries version, nonce and tag; docs/vhsm-protocol.md) or
 * RSA-OAEP (alg VHSM_ALG_RSA_OAEP implied by an RSA key; hash picks the digest). */
VHSM_API VHSM_MUST_CHECK int vhsm_encrypt(vhsm_client *c, const char *name, vhsm_hash hash,
					  const uint8_t *aad, size_t aad_len, const uint8_t *in,
					  size_t in_len, uint8_t **out, size_t *out_len);
VHSM_API VHSM_MUST_CHECK int vhsm_decrypt(vhsm_client *c, const char *name, vhsm_hash hash,
					  const uint8_t *aad, size_t aad_len, const uint8_t *in,
					  size_t in_len, uint8_t **out, size_t *out_len);
/* RFC 5649 AES key wrap with padding of caller-supplied key material. */
VHSM_API VHSM_MUST_CHECK int vhsm_wrap(vhsm_client *c, const char *name, const uint8_t *in,
				       size_t in_len, uint8_t **out, size_t *out_len);
/* Unwrap into a new key object `new_name` (material never returned). */
VHSM_API VHSM_MUST_CHECK int vhsm_unwrap(vhsm_client *c, const char *name, const uint8_t *in,
					 size_t in_len, const char *new_name,
					 const vhsm_key_spec *spec);
VHSM_API VHSM_MUST_CHECK int vhsm_hmac(vhsm_client *c, const char *name, const uint8_t *msg,
				       size_t len, uint8_t **mac, size_t *mac_len);
/* ECDH with `name` and a peer public key (DER SPKI); the shared secret goes
 * through HKDF-SHA-256 (info "nitride-vhsm-ecdh" || new_name) into a new key. */
VHSM_API VHSM_MUST_CHECK int vhsm_derive(vhsm_client *c, const char *name,
					 const uint8_t *peer_spki, size_t peer_len,
					 const char *new_name, const vhsm_key_spec *spec);
/* As vhsm_derive with a KDF choice; `shared`/`shared_len` is the X9.63 shared
 * info (must be empty for the other KDFs). */
VHSM_API VHSM_MUST_CHECK int vhsm_derive_kdf(vhsm_client *c, const char *name,
					     const uint8_t *peer_spki, size_t peer_len,
					     vhsm_kdf kdf, const uint8_t *shared, size_t shared_len,
					     const char *new_name, const vhsm_key_spec *spec);
/* The public data of a VHSM_KEY_CERT object (the DER certificate; malloc'ed,
 * free with vhsm_buf_free) and its attributes (info may be NULL).  Needs the
 * policy right get_public on the name. */
VHSM_API VHSM_MUST_CHECK int vhsm_read_public_data(vhsm_client *c, const char *name,
						   vhsm_key_info *info, uint8_t **data,
						   size_t *len);
VHSM_API VHSM_MUST_CHECK int vhsm_random(vhsm_client *c, size_t n, uint8_t **out);
/* New version of the key; *version gets it (may be NULL). */
VHSM_API VHSM_MUST_CHECK int vhsm_rotate(vhsm_client *c, const char *name, uint32_t *version);
/* Retire every version <= `version` except the current one. */
VHSM_API VHSM_MUST_CHECK int vhsm_retire(vhsm_client *c, const char *name, uint32_t version);
/* Case B: make `name` available — if it is absent but provisionable, or its
 * attestation is stale, vhsmd has nitrided provision or attest it and answers
 * when that is done (VHSM_E_UNAVAILABLE with the reason otherwise).  Needs the
 * policy right "provision" on the name. */
VHSM_API VHSM_MUST_CHECK int vhsm_provision(vhsm_client *c, const char *name);
/* Read an exportable opaque secret. */
VHSM_API VHSM_MUST_CHECK int vhsm_read_secret(vhsm_client *c, const char *name, uint8_t **out,
					      size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* NITRIDE_VHSM_H */
