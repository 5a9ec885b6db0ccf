/* Names shared by libvhsm, the vhsm CLI and vhsmd. */
#include <string.h>

#include "nitride/vhsm.h"

VHSM_API const char *
vhsm_strerror(int status)
{
	switch (status) {
	case VHSM_OK: return "ok";
	case VHSM_E_PROTOCOL: return "protocol error";
	case VHSM_E_DENIED: return "permission denied";
	case VHSM_E_NOT_FOUND: return "no such key";
	case VHSM_E_EXISTS: return "key exists";
	case VHSM_E_ARGUMENT: return "invalid argument";
	case VHSM_E_USAGE: return "operation not allowed by the key's type or usages";
	case VHSM_E_BAD_SIGNATURE: return "signature does not verify";
	case VHSM_E_DECRYPT: return "decryption failed (authentication)";
	case VHSM_E_UNSUPPORTED: return "unsupported algorithm for this key";
	case VHSM_E_NOMEM: return "out of memory";
	case VHSM_E_INTERNAL: return "internal error";
	case VHSM_E_IO: return "connection to vhsmd failed";
	case VHSM_E_STORE: return "sealed store failure";
	case VHSM_E_NOT_ATTESTED: return "key requires fresh attestation";
	case VHSM_E_TOO_LARGE: return "message too large";
	case VHSM_E_NOT_EXPORTABLE: return "not exportable";
	case VHSM_E_RETIRED: return "key version retired";
	case VHSM_E_UNAVAILABLE: return "key unavailable";
	default: return "unknown error";
	}
}

static const char *const type_names[VHSM_KEY_TYPE_MAX + 1] = {
	[VHSM_KEY_AES256] = "aes256",
	[VHSM_KEY_HMAC_SHA256] = "hmac-sha256",
	[VHSM_KEY_HMAC_SHA384] = "hmac-sha384",
	[VHSM_KEY_EC_P256] = "p256",
	[VHSM_KEY_EC_P384] = "p384",
	[VHSM_KEY_ED25519] = "ed25519",
	[VHSM_KEY_RSA2048] = "rsa2048",
	[VHSM_KEY_RSA3072] = "rsa3072",
	[VHSM_KEY_RSA4096] = "rsa4096",
	[VHSM_KEY_OPAQUE] = "opaque",
	[VHSM_KEY_CERT] = "cert",
};

VHSM_API const char *
vhsm_key_type_name(vhsm_key_type t)
{
	return t >= 1 && t <= VHSM_KEY_TYPE_MAX ? type_names[t] : "unknown";
}

VHSM_API vhsm_key_type
vhsm_key_type_from_name(const char *s)
{
	int i;

	for (i = 1; i <= VHSM_KEY_TYPE_MAX; i++)
		if (strcmp(type_names[i], s) == 0)
			return (vhsm_key_type)i;
	return (vhsm_key_type)0;
}
