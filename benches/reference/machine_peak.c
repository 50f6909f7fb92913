/*
 * The ceilings simdnet's kernels are held against on this machine:
 *   - fp32 FMA throughput, with 256-bit (AVX2+FMA) and, where the CPU has it, 512-bit (AVX-512F)
 *     registers, on one thread and on every core;
 *   - the rate of the SGD-momentum access pattern (read p, g, v; write p, v: 20 bytes/element),
 *     with LeNet-5's 61,706 parameters in cache, and on arrays far larger than the caches.
 *
 *   gcc -O3 -mavx2 -mfma -mavx512f benches/reference/machine_peak.c -o /tmp/peak -lpthread
 * (-O3: at -O2 gcc keeps the twelve accumulators in memory and the FMA loop measures stores)
 *   /tmp/peak
 *
 * The AVX-512 loop is compiled in always and run only when the CPU reports avx512f, so one
 * binary serves every x86-64 machine that has AVX2. Best of several repetitions is printed.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 50000000L
#define CHAINS 12 /* independent FMA chains: enough to cover latency x ports on current cores */

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((target("avx2,fma"))) static void *fma256(void *sink) {
    __m256 acc[CHAINS];
    const __m256 mul = _mm256_set1_ps(0.9999999f), add = _mm256_set1_ps(1e-8f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps(1.0f + (float)c);
    for (long r = 0; r < ROUNDS; r++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], mul, add);
    float total = 0.0f, lanes[8];
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_ps(lanes, acc[c]);
        total += lanes[3];
    }
    *(volatile float *)sink = total;
    return NULL;
}

__attribute__((target("avx512f"))) static void *fma512(void *sink) {
    __m512 acc[CHAINS];
    const __m512 mul = _mm512_set1_ps(0.9999999f), add = _mm512_set1_ps(1e-8f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps(1.0f + (float)c);
    for (long r = 0; r < ROUNDS; r++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], mul, add);
    float total = 0.0f;
    for (int c = 0; c < CHAINS; c++) total += _mm512_reduce_add_ps(acc[c]);
    *(volatile float *)sink = total;
    return NULL;
}

/* Runs f on `threads` threads at once; returns the wall time of the slowest. */
static double on_threads(int threads, void *(*f)(void *), void *args, size_t stride) {
    pthread_t ids[256];
    double start = seconds();
    for (int t = 0; t < threads; t++) pthread_create(&ids[t], NULL, f, (char *)args + t * stride);
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    return seconds() - start;
}

typedef struct {
    float *p, *g, *v;
    size_t len;
} Slice;

static void *momentum_step(void *arg) {
    Slice *s = arg;
    for (size_t i = 0; i < s->len; i++) {
        float v = 0.9f * s->v[i] + s->g[i];
        s->v[i] = v;
        s->p[i] -= 0.01f * v;
    }
    return NULL;
}

static float *filled(size_t n, float value) {
    float *a = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!a) {
        perror("aligned_alloc");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) a[i] = value;
    return a;
}

int main(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cores = online < 1 ? 1 : (online > 256 ? 256 : (int)online);
    int counts[2] = {1, cores};
    float sinks[256];
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");

    for (int width = 256; width <= 512; width += 256) {
        if (width == 512 && !has512) {
            printf("fma512: this CPU has no AVX-512F\n");
            continue;
        }
        for (int i = 0; i < (cores > 1 ? 2 : 1); i++) {
            double best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t = on_threads(counts[i], width == 256 ? fma256 : fma512, sinks, sizeof(float));
                if (t < best) best = t;
            }
            double flops = (double)counts[i] * ROUNDS * CHAINS * (width / 32) * 2.0;
            printf("fma%d threads=%d gflops=%.1f\n", width, counts[i], flops / best / 1e9);
        }
    }

    {
        size_t n = 61706, reps = 20000;
        Slice s = {filled(n, 1.0f), filled(n, 0.5f), filled(n, 0.0f), n};
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double start = seconds();
            for (size_t k = 0; k < reps; k++) {
                momentum_step(&s);
                __asm__ volatile("" ::: "memory");
            }
            double t = (seconds() - start) / (double)reps;
            if (t < best) best = t;
        }
        printf("momentum in cache (61,706 params) threads=1 us=%.2f gbytes_per_sec=%.1f\n", best * 1e6,
               20.0 * (double)n / best / 1e9);
    }

    size_t n = (size_t)32 << 20;
    float *p = filled(n, 1.0f), *g = filled(n, 0.5f), *v = filled(n, 0.0f);
    for (int i = 0; i < (cores > 1 ? 2 : 1); i++) {
        Slice parts[256];
        for (int t = 0; t < counts[i]; t++) {
            size_t lo = n * (size_t)t / (size_t)counts[i], hi = n * (size_t)(t + 1) / (size_t)counts[i];
            parts[t] = (Slice){p + lo, g + lo, v + lo, hi - lo};
        }
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t = on_threads(counts[i], momentum_step, parts, sizeof(Slice));
            if (t < best) best = t;
        }
        printf("momentum from memory (32 Mi params) threads=%d gbytes_per_sec=%.1f\n", counts[i],
               20.0 * (double)n / best / 1e9);
    }
    printf("(checksum %g)\n", (double)p[n - 1]);
    return 0;
}
