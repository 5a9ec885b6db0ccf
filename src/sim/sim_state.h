/*
 * sim_state — the simulator's persistent state directory (docs/snpsim.md):
 *
 *   DIR/                    0700
 *     chip.secret           32 random bytes, 0600: the simulated chip's secret
 *     <product>/            0700, created when the product is first simulated
 *       ark.key ask.key asvk.key      RSA-4096 private keys (PKCS#8 PEM), 0600
 *       ark.pem ask.pem asvk.pem      their certificates
 *       vcek/<tcb>-<chip id>.der      VCEKs issued so far (by TCB and chip)
 *       vlek/<tcb>.der                VLEKs issued so far (by TCB)
 *
 * Files are written atomically (temp + fsync + rename).  VCEK and VLEK private
 * keys are never stored: they are derived from the chip secret, the product,
 * the chip id and the TCB (sim_crypto), as AMD derives a VCEK from the chip's
 * secret and TCB; only their certificates are kept.
 *
 * All functions are serialised by an internal lock.  Functions return 0 or -1
 * with one line in err[errlen]; outputs are written only on success.
 */
#ifndef NITRIDE_SIM_STATE_H
#define NITRIDE_SIM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nitride/snp.h>
#include <openssl/evp.h>

#define SIM_CHIP_SECRET_LEN 32u
#define SIM_VLEK_CSP_ID "CN=snpsimd.invalid"

struct sim_state;

/* Open (creating on first use) the state directory and its chip secret. */
__attribute__((warn_unused_result)) int sim_state_open(const char *dir, struct sim_state **out,
						       char *err, size_t errlen);
void sim_state_free(struct sim_state *st);
const char *sim_state_dir(const struct sim_state *st);

/* The chip secret (SIM_CHIP_SECRET_LEN bytes, owned by st, wiped by sim_state_free). */
const uint8_t *sim_state_chip_secret(const struct sim_state *st);

/* The simulated chip's CHIP_ID for `product`: HKDF-SHA-384 of the chip secret
 * (salt "snpsimd chip id v1", info the lowercase product name), 64 bytes; a
 * Turin chip id keeps the first 8 and zeroes the rest. */
__attribute__((warn_unused_result)) int sim_state_chip_id(const struct sim_state *st, snp_product p,
							  uint8_t out[SNP_CHIP_ID_LEN]);

/* Create the product's ARK, ASK and ASVK on first use; load them otherwise. */
__attribute__((warn_unused_result)) int sim_state_ensure_ca(struct sim_state *st, snp_product p,
							    char *err, size_t errlen);
/* True when the product's hierarchy exists (after sim_state_ensure_ca or on disk). */
bool sim_state_has_ca(struct sim_state *st, snp_product p);

/* DER (`pem` false) or PEM (`pem` true) of the product's ARK, ASK or ASVK
 * (role SNP_ROLE_ARK/ASK/ASVK); *out malloc'ed, caller frees. */
__attribute__((warn_unused_result)) int sim_state_ca_cert(struct sim_state *st, snp_product p,
							  snp_cert_role role, bool pem,
							  uint8_t **out, size_t *len,
							  char *err, size_t errlen);

/*
 * The VCEK (role SNP_ROLE_VCEK, for `chip_id`) or VLEK (SNP_ROLE_VLEK, chip_id
 * ignored) of `product` at TCB `tcb`: loaded from the state when an issued
 * certificate is there and valid for at least another day, else issued now
 * and stored.  *der malloc'ed (caller frees); *key (optional) gets the private
 * key (caller frees with EVP_PKEY_free).
 */
__attribute__((warn_unused_result)) int sim_state_leaf(struct sim_state *st, snp_product p,
						       snp_cert_role role,
						       const uint8_t chip_id[SNP_CHIP_ID_LEN],
						       uint64_t tcb, uint8_t **der, size_t *der_len,
						       EVP_PKEY **key, char *err, size_t errlen);

/* A fresh DER CRL of the product signed by its ARK: no entries, thisUpdate now,
 * nextUpdate in 7 days.  (The same CRL serves /vcek and /vlek: AMD's ARK signs
 * both.)  *der malloc'ed. */
__attribute__((warn_unused_result)) int sim_state_crl(struct sim_state *st, snp_product p,
						      uint8_t **der, size_t *der_len,
						      char *err, size_t errlen);

/* Write OUT/ark_<p>.pem, ask_<p>.pem, asvk_<p>.pem (0644) for every product whose
 * hierarchy exists; creates OUT (0755) if needed.  *count gets the product count. */
__attribute__((warn_unused_result)) int sim_state_export_roots(struct sim_state *st,
							       const char *outdir, int *count,
							       char *err, size_t errlen);

#endif
