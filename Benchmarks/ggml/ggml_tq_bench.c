/* ggml's own TQ2_0 / TQ1_0 quantizer (ggml_quantize_chunk → quantize_row_tq*_0_ref, what llama-quantize
 * runs) on N float32 elements with T threads (pthreads over rows of 4096), timed like `ternq bench`:
 * one warm-up run, then the median of R runs. The data is the same as `ternq bench`'s: SplitMix64 seed
 * 0x5EED, Box–Muller N(0, 0.02), rounded to float32.
 *
 * usage: ggml_tq_bench ELEMENTS THREADS [RUNS] [tq2_0|tq1_0]
 * prints one JSON line: {"elements":…,"threads":…,"type":"tq2_0","seconds":…,"gigabytes_per_second":…} */
#include <ggml.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROW 4096

static uint64_t state;
static double spare;
static int has_spare;

static uint64_t next_u64(void) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double next_unit(void) { return (double)(next_u64() >> 11) * 0x1p-53; }

static double next_gaussian(void) {
    if (has_spare) {
        has_spare = 0;
        return spare;
    }
    double u1 = next_unit();
    while (u1 <= 0) u1 = next_unit();
    double u2 = next_unit();
    double r = sqrt(-2 * log(u1));
    spare = r * sin(2 * M_PI * u2);
    has_spare = 1;
    return r * cos(2 * M_PI * u2);
}

struct job {
    enum ggml_type type;
    const float *source;
    char *destination;
    int64_t first_row, rows;
};

static void *run_rows(void *argument) {
    struct job *j = argument;
    size_t row_bytes = ggml_row_size(j->type, ROW);
    ggml_quantize_chunk(j->type, j->source + j->first_row * ROW, j->destination + j->first_row * row_bytes, 0,
                        j->rows, ROW, NULL);
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ELEMENTS THREADS [RUNS] [tq2_0|tq1_0]\n", argv[0]);
        return 64;
    }
    long long elements = atoll(argv[1]);
    int threads = atoi(argv[2]);
    int runs = argc > 3 ? atoi(argv[3]) : 7;
    enum ggml_type type = (argc > 4 && strcmp(argv[4], "tq1_0") == 0) ? GGML_TYPE_TQ1_0 : GGML_TYPE_TQ2_0;
    if (elements <= 0 || elements % ROW != 0 || threads < 1 || threads > 1024 || runs < 1 || runs > 1000) {
        fprintf(stderr, "ELEMENTS must be a positive multiple of %d, THREADS 1...1024, RUNS 1...1000\n", ROW);
        return 64;
    }
    int64_t rows = elements / ROW;
    float *source = malloc((size_t)elements * sizeof(float));
    char *destination = malloc((size_t)rows * ggml_row_size(type, ROW));
    if (!source || !destination) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    state = 0x5EED;
    for (long long i = 0; i < elements; i++) source[i] = (float)(next_gaussian() * 0.02);
    memset(destination, 0, (size_t)rows * ggml_row_size(type, ROW));

    pthread_t *ids = calloc((size_t)threads, sizeof(pthread_t));
    struct job *jobs = calloc((size_t)threads, sizeof(struct job));
    double *samples = calloc((size_t)runs, sizeof(double));
    for (int run = -1; run < runs; run++) {
        double start = now();
        int64_t done = 0;
        for (int t = 0; t < threads; t++) {
            int64_t share = rows / threads + (t < rows % threads ? 1 : 0);
            jobs[t] = (struct job){type, source, destination, done, share};
            done += share;
            pthread_create(&ids[t], NULL, run_rows, &jobs[t]);
        }
        for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
        double seconds = now() - start;
        if (run >= 0) samples[run] = seconds;
    }
    qsort(samples, (size_t)runs, sizeof(double), compare);
    double median = samples[runs / 2];
    printf("{\"elements\":%lld,\"threads\":%d,\"type\":\"%s\",\"runs\":%d,\"seconds\":%.6f,\"gigabytes_per_second\":%.4f}\n",
           elements, threads, type == GGML_TYPE_TQ1_0 ? "tq1_0" : "tq2_0", runs, median,
           (double)elements * 4.0 / median / 1e9);
    free(samples);
    free(jobs);
    free(ids);
    free(destination);
    free(source);
    return 0;
}
