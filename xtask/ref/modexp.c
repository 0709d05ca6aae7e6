/* The OpenSSL reference for `cargo xtask bench`: constant-time modular exponentiation
 * (BN_mod_exp_mont_consttime, what OpenSSL's DH key generation and derivation use) in the
 * RFC 2409 / RFC 3526 groups, with exponents of the lengths esession uses, so that the DH
 * figures compare equal work. Prints "keygen modpN NS" (2^x) and "agree modpN NS" (y^x) in
 * nanoseconds per operation of this thread's CPU time.
 *
 * Usage: modexp GROUP:BITS ...   e.g. modexp 14:320 18:640
 */
#include <openssl/bn.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static BIGNUM *prime(int group) {
    switch (group) {
    case 1: return BN_get_rfc2409_prime_768(NULL);
    case 2: return BN_get_rfc2409_prime_1024(NULL);
    case 5: return BN_get_rfc3526_prime_1536(NULL);
    case 14: return BN_get_rfc3526_prime_2048(NULL);
    case 15: return BN_get_rfc3526_prime_3072(NULL);
    case 16: return BN_get_rfc3526_prime_4096(NULL);
    case 17: return BN_get_rfc3526_prime_6144(NULL);
    case 18: return BN_get_rfc3526_prime_8192(NULL);
    default: return NULL;
    }
}

/* ns per exponentiation of base^x mod p: the fastest of 20 blocks of at least 25 ms of CPU time
 * each (the same estimator as `cargo xtask bench` applies to criterion's samples: the machines'
 * speed drifts, and the fastest block is the closest to the cost of the work itself). */
static double measure(const BIGNUM *base, const BIGNUM *x, const BIGNUM *p, BN_CTX *ctx,
                      BN_MONT_CTX *mont) {
    BIGNUM *r = BN_new();
    double best = 0;
    for (int block = 0; block < 20; block++) {
        long n = 0;
        double start = now_ns(), spent = 0;
        do {
            if (!BN_mod_exp_mont_consttime(r, base, x, p, ctx, mont)) {
                fprintf(stderr, "BN_mod_exp_mont_consttime failed\n");
                exit(1);
            }
            n++;
            spent = now_ns() - start;
        } while (spent < 2.5e7);
        double per = spent / (double)n;
        if (block == 0 || per < best) {
            best = per;
        }
    }
    BN_free(r);
    return best;
}

int main(int argc, char **argv) {
    BN_CTX *ctx = BN_CTX_new();
    for (int i = 1; i < argc; i++) {
        int group = 0, bits = 0;
        if (sscanf(argv[i], "%d:%d", &group, &bits) != 2) {
            fprintf(stderr, "bad argument %s\n", argv[i]);
            return 2;
        }
        BIGNUM *p = prime(group);
        if (!p || bits < 8) {
            fprintf(stderr, "unknown group %d\n", group);
            return 2;
        }
        BN_MONT_CTX *mont = BN_MONT_CTX_new();
        BN_MONT_CTX_set(mont, p, ctx);
        BIGNUM *g = BN_new(), *x = BN_new(), *y = BN_new();
        BN_set_word(g, 2);
        /* x: exactly `bits` bits, top bit set; y: a random element of the group. */
        BN_rand(x, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY);
        BN_set_flags(x, BN_FLG_CONSTTIME);
        BN_rand_range(y, p);
        printf("keygen modp%d %.0f\n", group, measure(g, x, p, ctx, mont));
        printf("agree modp%d %.0f\n", group, measure(y, x, p, ctx, mont));
        fflush(stdout);
        BN_free(g);
        BN_free(x);
        BN_free(y);
        BN_free(p);
        BN_MONT_CTX_free(mont);
    }
    BN_CTX_free(ctx);
    return 0;
}
