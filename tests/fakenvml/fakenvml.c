/*
 * A fake libnvidia-ml.so.1 for tests: the C ABI that pynvml (nvidia-ml-py 13.x) calls for the agent's
 * GPU monitor, answered from a plain text file named by $FAKE_NVML_CONFIG (format: README.md here).
 *
 * The file is read again on every call, so a test may rewrite it (atomically) while a process runs to
 * inject faults: a GPU lost, an error from one call, new XID events. An event set delivers each XID event
 * once, in sequence-number order, and only events whose sequence number is above the highest one present
 * in the file when the set was created (NVML reports only events that happen after registration).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

#define EVENT_TYPE_XID_CRITICAL_ERROR 0x8ULL
#define TEMPERATURE_V1_VERSION 0x100000CU

#define MAX_GPUS 16
#define MAX_EVENTS 512
#define MAX_ERRORS 64
#define MAX_SETS 16
#define TEXT_LEN 96
#define POLL_INTERVAL_MS 10

typedef int nvmlReturn_t;

/* What a device handle points at: one slot per GPU index. */
struct fake_device {
    unsigned int index;
};
typedef struct fake_device *nvmlDevice_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int version;
    unsigned int sensorType;
    int temperature;
} nvmlTemperature_v1_t;

typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlEventData_t;

struct injected_error {
    int gpu; /* -1: every device, and calls that take no device */
    char call[TEXT_LEN];
    int code;
};

struct gpu_description {
    char uuid[TEXT_LEN];
    char name[TEXT_LEN];
    unsigned long long memory_total;
    unsigned long long memory_used;
    unsigned int utilization;
    unsigned int memory_utilization;
    int temperature;
    unsigned int power_mw;
    unsigned long long ecc_uncorrected_volatile;
    unsigned long long ecc_uncorrected_aggregate;
    unsigned int remapped_correctable;
    unsigned int remapped_uncorrectable;
    unsigned int remapped_pending;
    unsigned int remapped_failure;
    unsigned int retired_pages_pending;
    unsigned long long clocks_event_reasons;
    int cuda_major; /* compute capability, e.g. 7.0 */
    int cuda_minor;
    int lost;
};

struct xid_event {
    unsigned long long seq;
    unsigned int gpu;
    unsigned long long xid;
};

struct fake_config {
    char driver_version[TEXT_LEN];
    unsigned int gpu_count;
    struct gpu_description gpus[MAX_GPUS];
    unsigned int event_count;
    struct xid_event events[MAX_EVENTS];
    unsigned int error_count;
    struct injected_error errors[MAX_ERRORS];
};

struct fake_event_set {
    int in_use;
    unsigned long long registered_types[MAX_GPUS];
    unsigned long long delivered_up_to;
};
typedef struct fake_event_set *nvmlEventSet_t;

static struct fake_device devices[MAX_GPUS];
static struct fake_event_set event_sets[MAX_SETS];
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_count;

/* ---- the description file ------------------------------------------------------------------------ */

static void default_gpu(struct gpu_description *gpu, unsigned int index) {
    memset(gpu, 0, sizeof(*gpu));
    snprintf(gpu->uuid, sizeof(gpu->uuid), "GPU-fa4e0000-0000-0000-0000-%012u", index);
    snprintf(gpu->name, sizeof(gpu->name), "Fake GPU");
    gpu->memory_total = 16ULL << 30;
    gpu->temperature = 40;
    gpu->power_mw = 50000;
    gpu->cuda_major = 7;
    gpu->cuda_minor = 0;
}

/* "8.0" -> 8, 0; "9" -> 9, 0. */
static void set_compute_capability(struct gpu_description *gpu, const char *value) {
    char *end = NULL;
    gpu->cuda_major = (int)strtol(value, &end, 10);
    gpu->cuda_minor = (end && *end == '.') ? (int)strtol(end + 1, NULL, 10) : 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
    return s;
}

static void copy_text(char *dst, const char *src) {
    snprintf(dst, TEXT_LEN, "%s", src);
}

static unsigned long long number(const char *s) {
    return strtoull(s, NULL, 0);
}

static void set_gpu_key(struct gpu_description *gpu, const char *key, const char *value) {
    if (!strcmp(key, "uuid")) copy_text(gpu->uuid, value);
    else if (!strcmp(key, "name")) copy_text(gpu->name, value);
    else if (!strcmp(key, "memory_total")) gpu->memory_total = number(value);
    else if (!strcmp(key, "memory_used")) gpu->memory_used = number(value);
    else if (!strcmp(key, "utilization")) gpu->utilization = (unsigned int)number(value);
    else if (!strcmp(key, "memory_utilization")) gpu->memory_utilization = (unsigned int)number(value);
    else if (!strcmp(key, "temperature")) gpu->temperature = (int)strtol(value, NULL, 0);
    else if (!strcmp(key, "power_mw")) gpu->power_mw = (unsigned int)number(value);
    else if (!strcmp(key, "ecc_uncorrected_volatile")) gpu->ecc_uncorrected_volatile = number(value);
    else if (!strcmp(key, "ecc_uncorrected_aggregate")) gpu->ecc_uncorrected_aggregate = number(value);
    else if (!strcmp(key, "remapped_correctable")) gpu->remapped_correctable = (unsigned int)number(value);
    else if (!strcmp(key, "remapped_uncorrectable")) gpu->remapped_uncorrectable = (unsigned int)number(value);
    else if (!strcmp(key, "remapped_pending")) gpu->remapped_pending = (unsigned int)number(value);
    else if (!strcmp(key, "remapped_failure")) gpu->remapped_failure = (unsigned int)number(value);
    else if (!strcmp(key, "retired_pages_pending")) gpu->retired_pages_pending = (unsigned int)number(value);
    else if (!strcmp(key, "clocks_event_reasons")) gpu->clocks_event_reasons = number(value);
    else if (!strcmp(key, "compute_capability")) set_compute_capability(gpu, value);
    else if (!strcmp(key, "lost")) gpu->lost = (int)number(value);
    else fprintf(stderr, "fakenvml: unknown gpu key '%s' ignored\n", key);
}

static int parse_config(struct fake_config *cfg);

/* The last parse, reused while the file (path, inode, size, mtime) is unchanged: tests replace the file
   atomically, so a new description always has a new inode. Keeps the fake cheap for the benchmarks. */
static struct fake_config cached_config;
static struct stat cached_stat;
static int cached_valid;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* Fill *cfg from the file. Returns 0, or -1 when it cannot be read. */
static int load_config(struct fake_config *cfg) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        memset(cfg, 0, sizeof(*cfg));
        copy_text(cfg->driver_version, "550.54.15");
        return -1;
    }
    pthread_mutex_lock(&cache_lock);
    if (cached_valid && st.st_ino == cached_stat.st_ino && st.st_dev == cached_stat.st_dev &&
        st.st_size == cached_stat.st_size && st.st_mtim.tv_sec == cached_stat.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == cached_stat.st_mtim.tv_nsec) {
        memcpy(cfg, &cached_config, sizeof(*cfg));
        pthread_mutex_unlock(&cache_lock);
        return 0;
    }
    int rc = parse_config(cfg);
    if (rc == 0) {
        memcpy(&cached_config, cfg, sizeof(*cfg));
        cached_stat = st;
        cached_valid = 1;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

/* Parse the file into *cfg. Returns 0, or -1 when it cannot be read. */
static int parse_config(struct fake_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    copy_text(cfg->driver_version, "550.54.15");
    const char *path = getenv("FAKE_NVML_CONFIG");
    if (!path) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    int current = -1;
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *text = trim(line);
        if (!*text) continue;
        char *value = text + strcspn(text, " \t");
        if (*value) *value++ = '\0';
        value = trim(value);
        const char *key = text;
        if (!strcmp(key, "gpu")) {
            unsigned long index = strtoul(value, NULL, 0);
            if (index >= MAX_GPUS) { current = -1; continue; }
            while (cfg->gpu_count <= index) {
                default_gpu(&cfg->gpus[cfg->gpu_count], cfg->gpu_count);
                cfg->gpu_count++;
            }
            current = (int)index;
        } else if (!strcmp(key, "driver_version")) {
            copy_text(cfg->driver_version, value);
        } else if (!strcmp(key, "xid")) {
            struct xid_event ev;
            if (cfg->event_count < MAX_EVENTS && sscanf(value, "%llu %u %llu", &ev.seq, &ev.gpu, &ev.xid) == 3)
                cfg->events[cfg->event_count++] = ev;
        } else if (!strcmp(key, "error")) {
            struct injected_error err;
            err.gpu = current;
            if (cfg->error_count < MAX_ERRORS && sscanf(value, "%95s %d", err.call, &err.code) == 2)
                cfg->errors[cfg->error_count++] = err;
        } else if (current >= 0) {
            set_gpu_key(&cfg->gpus[current], key, value);
        } else {
            fprintf(stderr, "fakenvml: key '%s' outside a gpu block ignored\n", key);
        }
    }
    fclose(f);
    return 0;
}

/* The code injected for `call` on `gpu` (-1: no device), or NVML_SUCCESS. */
static int injected(const struct fake_config *cfg, const char *call, int gpu) {
    for (unsigned int i = 0; i < cfg->error_count; i++) {
        const struct injected_error *err = &cfg->errors[i];
        if ((err->gpu == -1 || err->gpu == gpu) && !strcmp(err->call, call)) return err->code;
    }
    return NVML_SUCCESS;
}

static int initialized(void) {
    pthread_mutex_lock(&state_lock);
    int n = init_count;
    pthread_mutex_unlock(&state_lock);
    return n > 0;
}

/* Common entry of every call: read the file, check init, the handle, lost and injected errors. */
static nvmlReturn_t begin_call(struct fake_config *cfg, const char *call, nvmlDevice_t device,
                               struct gpu_description **gpu) {
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    if (load_config(cfg) != 0) return NVML_ERROR_UNKNOWN;
    int index = -1;
    if (gpu) {
        if (device < &devices[0] || device >= &devices[MAX_GPUS]) return NVML_ERROR_INVALID_ARGUMENT;
        index = (int)device->index;
        if ((unsigned int)index >= cfg->gpu_count) return NVML_ERROR_GPU_IS_LOST;
        *gpu = &cfg->gpus[index];
        if ((*gpu)->lost) return NVML_ERROR_GPU_IS_LOST;
    }
    return injected(cfg, call, index);
}

#define DEVICE_CALL(name, device)                                                  \
    struct fake_config *cfg = malloc(sizeof(struct fake_config));                \
    if (!cfg) return NVML_ERROR_UNKNOWN;                                          \
    struct gpu_description *gpu = NULL;                                           \
    nvmlReturn_t rc = begin_call(cfg, name, device, &gpu);                        \
    if (rc != NVML_SUCCESS) { free(cfg); return rc; }

#define DONE(code) do { free(cfg); return (code); } while (0)

/* ---- library ------------------------------------------------------------------------------------- */

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    struct fake_config *cfg = malloc(sizeof(struct fake_config));
    if (!cfg) return NVML_ERROR_UNKNOWN;
    int loaded = load_config(cfg);
    nvmlReturn_t rc = loaded != 0 ? NVML_ERROR_DRIVER_NOT_LOADED : injected(cfg, "nvmlInitWithFlags", -1);
    free(cfg);
    if (rc != NVML_SUCCESS) return rc;
    pthread_mutex_lock(&state_lock);
    init_count++;
    pthread_mutex_unlock(&state_lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    return nvmlInitWithFlags(0);
}

nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&state_lock);
    nvmlReturn_t rc = init_count > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (init_count > 0) init_count--;
    pthread_mutex_unlock(&state_lock);
    return rc;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument Version Mismatch";
    case 21: return "No data";
    case NVML_ERROR_UNKNOWN: return "Unknown Error";
    default: return "Fake NVML error";
    }
}

static nvmlReturn_t copy_string(char *dst, unsigned int length, const char *src) {
    if (!dst) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    struct fake_config *cfg = malloc(sizeof(struct fake_config));
    if (!cfg) return NVML_ERROR_UNKNOWN;
    nvmlReturn_t rc = begin_call(cfg, "nvmlSystemGetDriverVersion", NULL, NULL);
    if (rc == NVML_SUCCESS) rc = copy_string(version, length, cfg->driver_version);
    DONE(rc);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    struct fake_config *cfg = malloc(sizeof(struct fake_config));
    if (!cfg) return NVML_ERROR_UNKNOWN;
    nvmlReturn_t rc = begin_call(cfg, "nvmlDeviceGetCount_v2", NULL, NULL);
    if (rc == NVML_SUCCESS) *count = cfg->gpu_count;
    DONE(rc);
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    struct fake_config *cfg = malloc(sizeof(struct fake_config));
    if (!cfg) return NVML_ERROR_UNKNOWN;
    nvmlReturn_t rc = begin_call(cfg, "nvmlDeviceGetHandleByIndex_v2", NULL, NULL);
    if (rc != NVML_SUCCESS) DONE(rc);
    if (index >= cfg->gpu_count || !device) DONE(NVML_ERROR_INVALID_ARGUMENT);
    if (cfg->gpus[index].lost) DONE(NVML_ERROR_GPU_IS_LOST);
    rc = injected(cfg, "nvmlDeviceGetHandleByIndex_v2", (int)index);
    if (rc != NVML_SUCCESS) DONE(rc);
    devices[index].index = index;
    *device = &devices[index];
    DONE(NVML_SUCCESS);
}

/* ---- device queries ------------------------------------------------------------------------------ */

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    DEVICE_CALL("nvmlDeviceGetIndex", device);
    (void)gpu;
    *index = device->index;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_CALL("nvmlDeviceGetUUID", device);
    DONE(copy_string(uuid, length, gpu->uuid));
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_CALL("nvmlDeviceGetName", device);
    DONE(copy_string(name, length, gpu->name));
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEVICE_CALL("nvmlDeviceGetMemoryInfo", device);
    memory->total = gpu->memory_total;
    memory->used = gpu->memory_used;
    memory->free = gpu->memory_total > gpu->memory_used ? gpu->memory_total - gpu->memory_used : 0;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    DEVICE_CALL("nvmlDeviceGetUtilizationRates", device);
    utilization->gpu = gpu->utilization;
    utilization->memory = gpu->memory_utilization;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_v1_t *temperature) {
    DEVICE_CALL("nvmlDeviceGetTemperatureV", device);
    if (temperature->version != TEMPERATURE_V1_VERSION) DONE(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (temperature->sensorType != 0) DONE(NVML_ERROR_INVALID_ARGUMENT);
    temperature->temperature = gpu->temperature;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, unsigned int sensor, unsigned int *temperature) {
    DEVICE_CALL("nvmlDeviceGetTemperature", device);
    if (sensor != 0) DONE(NVML_ERROR_INVALID_ARGUMENT);
    *temperature = (unsigned int)gpu->temperature;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power_mw) {
    DEVICE_CALL("nvmlDeviceGetPowerUsage", device);
    *power_mw = gpu->power_mw;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, unsigned int error_type, unsigned int counter_type,
                                         unsigned long long *count) {
    DEVICE_CALL("nvmlDeviceGetTotalEccErrors", device);
    if (error_type > 1 || counter_type > 1) DONE(NVML_ERROR_INVALID_ARGUMENT);
    if (error_type == 0) *count = 0; /* corrected errors are not modelled */
    else *count = counter_type == 0 ? gpu->ecc_uncorrected_volatile : gpu->ecc_uncorrected_aggregate;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *correctable, unsigned int *uncorrectable,
                                       unsigned int *pending, unsigned int *failure) {
    DEVICE_CALL("nvmlDeviceGetRemappedRows", device);
    *correctable = gpu->remapped_correctable;
    *uncorrectable = gpu->remapped_uncorrectable;
    *pending = gpu->remapped_pending;
    *failure = gpu->remapped_failure;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, unsigned int *pending) {
    DEVICE_CALL("nvmlDeviceGetRetiredPagesPendingStatus", device);
    *pending = gpu->retired_pages_pending ? 1 : 0;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
    DEVICE_CALL("nvmlDeviceGetCurrentClocksEventReasons", device);
    *reasons = gpu->clocks_event_reasons;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
    DEVICE_CALL("nvmlDeviceGetCurrentClocksThrottleReasons", device);
    *reasons = gpu->clocks_event_reasons;
    DONE(NVML_SUCCESS);
}

/* The ABI of the real call: two int out-parameters (nvml.h: int *major, int *minor). */
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
    DEVICE_CALL("nvmlDeviceGetCudaComputeCapability", device);
    if (!major || !minor) DONE(NVML_ERROR_INVALID_ARGUMENT);
    *major = gpu->cuda_major;
    *minor = gpu->cuda_minor;
    DONE(NVML_SUCCESS);
}

/* ---- events -------------------------------------------------------------------------------------- */

static int valid_set(nvmlEventSet_t set) {
    return set >= &event_sets[0] && set < &event_sets[MAX_SETS] && set->in_use;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    struct fake_config *cfg = malloc(sizeof(struct fake_config));
    if (!cfg) return NVML_ERROR_UNKNOWN;
    nvmlReturn_t rc = begin_call(cfg, "nvmlEventSetCreate", NULL, NULL);
    if (rc != NVML_SUCCESS) DONE(rc);
    unsigned long long newest = 0;
    for (unsigned int i = 0; i < cfg->event_count; i++)
        if (cfg->events[i].seq > newest) newest = cfg->events[i].seq;
    rc = NVML_ERROR_UNKNOWN; /* no free slot */
    pthread_mutex_lock(&state_lock);
    for (int i = 0; i < MAX_SETS; i++) {
        if (!event_sets[i].in_use) {
            memset(&event_sets[i], 0, sizeof(event_sets[i]));
            event_sets[i].in_use = 1;
            event_sets[i].delivered_up_to = newest;
            *set = &event_sets[i];
            rc = NVML_SUCCESS;
            break;
        }
    }
    pthread_mutex_unlock(&state_lock);
    DONE(rc);
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *types) {
    DEVICE_CALL("nvmlDeviceGetSupportedEventTypes", device);
    (void)gpu;
    *types = EVENT_TYPE_XID_CRITICAL_ERROR;
    DONE(NVML_SUCCESS);
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
    DEVICE_CALL("nvmlDeviceRegisterEvents", device);
    (void)gpu;
    if (types & ~EVENT_TYPE_XID_CRITICAL_ERROR) DONE(NVML_ERROR_NOT_SUPPORTED);
    pthread_mutex_lock(&state_lock);
    if (valid_set(set)) set->registered_types[device->index] |= types;
    else rc = NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_unlock(&state_lock);
    DONE(rc);
}

static void sleep_ms(unsigned int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static unsigned long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL;
}

/* An inotify descriptor that wakes when a file in the description file's directory is written, renamed in,
   created, deleted or touched; -1 when there is none (then the wait polls every POLL_INTERVAL_MS). Like the
   real driver, a wait for events then sleeps until something happens instead of waking 100 times a second. */
static int watch_config_dir(void) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    if (!path) return -1;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    if (len >= sizeof(dir)) return -1;
    if (slash && len == 0) len = 1; /* the file is in / */
    if (slash) memcpy(dir, path, len);
    else dir[len++] = '.';
    dir[len] = '\0';
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sleep up to `ms`, or less when the watched directory changed. */
static void wait_for_change(int fd, unsigned int ms) {
    if (fd < 0) {
        sleep_ms(ms < POLL_INTERVAL_MS ? ms : POLL_INTERVAL_MS);
        return;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, (int)ms) > 0) {
        char buf[4096];
        while (read(fd, buf, sizeof(buf)) > 0) {
        }
    }
}

/* Deliver the oldest undelivered XID for a registered device; NVML_ERROR_TIMEOUT when none came. */
static nvmlReturn_t event_set_wait(struct fake_config *cfg, int watch, nvmlEventSet_t set, nvmlEventData_t *data,
                                   unsigned int timeout_ms) {
    unsigned long long started = now_ms();
    for (;;) {
        /* The watch exists before this look at the file, so a change after the look wakes the wait below. */
        nvmlReturn_t rc = begin_call(cfg, "nvmlEventSetWait_v2", NULL, NULL);
        if (rc != NVML_SUCCESS) return rc;
        pthread_mutex_lock(&state_lock);
        if (!valid_set(set)) {
            pthread_mutex_unlock(&state_lock);
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        const struct xid_event *next = NULL;
        for (unsigned int i = 0; i < cfg->event_count; i++) {
            const struct xid_event *ev = &cfg->events[i];
            if (ev->seq <= set->delivered_up_to || ev->gpu >= MAX_GPUS) continue;
            if (!(set->registered_types[ev->gpu] & EVENT_TYPE_XID_CRITICAL_ERROR)) continue;
            if (!next || ev->seq < next->seq) next = ev;
        }
        if (next) {
            set->delivered_up_to = next->seq;
            devices[next->gpu].index = next->gpu;
            memset(data, 0, sizeof(*data));
            data->device = &devices[next->gpu];
            data->eventType = EVENT_TYPE_XID_CRITICAL_ERROR;
            data->eventData = next->xid;
            data->gpuInstanceId = 0xFFFFFFFFU;
            data->computeInstanceId = 0xFFFFFFFFU;
        }
        pthread_mutex_unlock(&state_lock);
        if (next) return NVML_SUCCESS;
        unsigned long long waited = now_ms() - started;
        if (waited >= timeout_ms) return NVML_ERROR_TIMEOUT;
        wait_for_change(watch, (unsigned int)(timeout_ms - waited));
    }
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms) {
    struct fake_config *cfg = malloc(sizeof(struct fake_config));
    if (!cfg) return NVML_ERROR_UNKNOWN;
    int watch = watch_config_dir();
    nvmlReturn_t rc = event_set_wait(cfg, watch, set, data, timeout_ms);
    if (watch >= 0) close(watch);
    DONE(rc);
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    pthread_mutex_lock(&state_lock);
    nvmlReturn_t rc = valid_set(set) ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) set->in_use = 0;
    pthread_mutex_unlock(&state_lock);
    return rc;
}
