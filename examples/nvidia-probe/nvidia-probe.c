/*
 * nvidia-probe: a stand-in for a CUDA start-up (libcuda's cuInit and first queries), for
 * trying the ioctl gate on NVIDIA's real driver ABI.
 *
 *   nvidia-probe startup   version checks, card info, root client, probed and attached GPU
 *                          ids, GPU id info, a GPU file registered to the control file, device
 *                          and subdevice, the device's and subdevice's first controls, the
 *                          build version (embedded pointers), UVM initialisation, free; then
 *                          the answers a gated sandbox must get for what it may not do
 *   nvidia-probe race N    N RM_CONTROLs of an allowed command while another thread flips the
 *                          command to GPU_GET_PIDS (which enforce refuses) after submission;
 *                          prints how many the gate answered as refused
 *   nvidia-probe bench N   times N RM_CONTROLs (GPU_GET_ATTACHED_IDS) and N RM_FREEs of a
 *                          handle that does not exist, and prints the nanoseconds per call
 *
 * Each call prints one line, "<call> -> <result> [<verdict>]"; verdict "ok" is what a gated
 * sandbox must answer, "UNEXPECTED" is not. Exit status 0 when every call was as expected.
 * The parameter sizes some controls take differ per driver branch; the probe picks them from
 * the version the driver reports, as libcuda is built for its driver.
 *
 * Build: cc -static -O2 -pthread -o nvidia-probe nvidia-probe.c  (scripts/setup does it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* nv-ioctl-numbers.h, nv_escape.h: _IOWR('F', nr, size). */
#define NV_IOCTL(nr, size) _IOC(_IOC_READ | _IOC_WRITE, 'F', (nr), (size))
#define NV_ESC_CARD_INFO 200
#define NV_ESC_REGISTER_FD 201
#define NV_ESC_CHECK_VERSION_STR 210
#define NV_ESC_RM_FREE 0x29
#define NV_ESC_RM_CONTROL 0x2a
#define NV_ESC_RM_ALLOC 0x2b

struct nv_pci_info { uint32_t domain; uint8_t bus, slot, function, pad0; uint16_t vendor_id, device_id; };
struct nv_card_info {
    uint8_t valid, pad[3];
    struct nv_pci_info pci_info;
    uint32_t gpu_id;
    uint16_t interrupt_line, pad1;
    uint64_t reg_address, reg_size, fb_address, fb_size;
    uint32_t minor_number;
    char dev_name[10];
    uint8_t pad2[2];
};
struct nv_rm_api_version { uint32_t cmd, reply; char version_string[64]; };
struct nvos54 { uint32_t h_client, h_object, cmd, flags; uint64_t params; uint32_t params_size, status; };
struct nvos64 {
    uint32_t h_root, h_object_parent, h_object_new, h_class;
    uint64_t p_alloc_parms, p_rights_requested;
    uint32_t params_size, flags, status, pad;
};
struct nvos00 { uint32_t h_root, h_object_parent, h_object_old, status; };
struct nv0080_alloc {
    uint32_t device_id, h_client_share, h_target_client, h_target_device, flags, pad;
    uint64_t va_space_size, va_start_internal, va_limit_internal;
    uint32_t va_mode, pad1;
};
struct uvm_initialize { uint64_t flags; uint32_t rm_status, pad; };
struct uvm_pageable_mem_access { uint8_t pageable_mem_access, pad[3]; uint32_t rm_status; };

_Static_assert(sizeof(struct nv_card_info) == 72, "nv_ioctl_card_info_t");
_Static_assert(sizeof(struct nv_rm_api_version) == 72, "nv_ioctl_rm_api_version_t");
_Static_assert(sizeof(struct nvos54) == 32, "NVOS54_PARAMETERS");
_Static_assert(sizeof(struct nvos64) == 48, "NVOS64_PARAMETERS");
_Static_assert(sizeof(struct nvos00) == 16, "NVOS00_PARAMETERS");
_Static_assert(sizeof(struct nv0080_alloc) == 56, "NV0080_ALLOC_PARAMETERS");

#define NV01_ROOT_CLIENT 0x41
#define NV01_DEVICE_0 0x80
#define NV20_SUBDEVICE_0 0x2080
#define NV_OK 0
#define NV_ERR_INVALID_CLASS 0x22
#define NV_ERR_INVALID_CLIENT 0x23
#define NV_ERR_NOT_SUPPORTED 0x56

#define SYSTEM_GET_BUILD_VERSION 0x101
#define GPU_GET_ATTACHED_IDS 0x201
#define GPU_GET_ID_INFO_V2 0x205
#define GPU_GET_PROBED_IDS 0x214
#define GPU_ATTACH_IDS 0x215
#define NV0080_GET_NUM_SUBDEVICES 0x800280
#define NV0080_GET_CLASSLIST_V2 0x800292
#define NV2080_GET_INFO_V2 0x20800102
#define NV2080_GET_NAME_STRING 0x20800110
#define NV2080_GET_GID_INFO 0x2080014a
#define NV2080_GET_PIDS 0x2080018d
#define NV2080_UNKNOWN_CMD 0x20800999
#define UVM_INITIALIZE 0x30000001
#define UVM_PAGEABLE_MEM_ACCESS 39

#define DEVICE_HANDLE 0x5c000001
#define SUBDEVICE_HANDLE 0x5c000002

static int failures;
static int major_version, minor_version;

static const char *result(long ret) {
    static char text[64];
    if (ret < 0) snprintf(text, sizeof text, "%s", strerrorname_np(errno));
    else snprintf(text, sizeof text, "%ld", ret);
    return text;
}

static void report(const char *call, long ret, const char *detail, int ok) {
    printf("%s -> %s%s%s [%s]\n", call, result(ret), detail[0] ? " " : "", detail,
           ok ? "ok" : "UNEXPECTED");
    if (!ok) failures++;
}

/* Parameter sizes that differ per branch (checked against the headers at each tag). */
static uint32_t probed_ids_size(void) { return major_version >= 580 ? 384 : 256; }
static uint32_t info_v2_size(void) {
    if (major_version >= 580) return 564;
    if (major_version >= 575) return 532;
    if (major_version >= 545) return 524;
    return 516;
}
static uint32_t name_string_size(void) { return major_version >= 595 ? 68 : 132; }
static uint32_t classlist_v2_size(void) {
    if (major_version >= 580) return 804;
    if (major_version >= 555) return 404;
    if (major_version >= 550) return 700;
    return 644;
}

static long control(int fd, uint32_t client, uint32_t object, uint32_t cmd, void *params,
                    uint32_t size, uint32_t *status) {
    struct nvos54 p = {.h_client = client, .h_object = object, .cmd = cmd,
                       .params = (uintptr_t)params, .params_size = size, .status = 0xffffffff};
    long ret = ioctl(fd, NV_IOCTL(NV_ESC_RM_CONTROL, sizeof p), &p);
    *status = p.status;
    return ret;
}

static long alloc(int fd, uint32_t client, uint32_t parent, uint32_t *handle, uint32_t class,
                  void *params, uint32_t *status) {
    struct nvos64 p = {.h_root = client, .h_object_parent = parent, .h_object_new = *handle,
                       .h_class = class, .p_alloc_parms = (uintptr_t)params, .status = 0xffffffff};
    long ret = ioctl(fd, NV_IOCTL(NV_ESC_RM_ALLOC, sizeof p), &p);
    *handle = p.h_object_new;
    *status = p.status;
    return ret;
}

static void expect_control(int fd, uint32_t client, uint32_t object, uint32_t cmd,
                           const char *name, void *params, uint32_t size, uint32_t want) {
    uint32_t status;
    long ret = control(fd, client, object, cmd, params, size, &status);
    char detail[64];
    snprintf(detail, sizeof detail, "status %#x", status);
    char call[96];
    snprintf(call, sizeof call, "RM_CONTROL %s", name);
    report(call, ret, detail, ret == 0 && status == want);
}

static int startup(void) {
    int ctl = open("/dev/nvidiactl", O_RDWR | O_CLOEXEC);
    report("open /dev/nvidiactl", ctl, "", ctl >= 0);
    if (ctl < 0) return 1;

    struct nv_rm_api_version version = {.cmd = '2'};
    long ret = ioctl(ctl, NV_IOCTL(NV_ESC_CHECK_VERSION_STR, sizeof version), &version);
    report("CHECK_VERSION_STR query", ret, version.version_string, ret == 0 && version.reply == 1);
    if (sscanf(version.version_string, "%d.%d", &major_version, &minor_version) != 2) return 1;
    version.cmd = 0;
    version.reply = 0;
    ret = ioctl(ctl, NV_IOCTL(NV_ESC_CHECK_VERSION_STR, sizeof version), &version);
    report("CHECK_VERSION_STR strict", ret, "", ret == 0 && version.reply == 1);

    struct nv_card_info cards[32];
    memset(cards, 0, sizeof cards);
    ret = ioctl(ctl, NV_IOCTL(NV_ESC_CARD_INFO, sizeof cards), cards);
    int valid = 0, first = -1;
    for (int i = 0; i < 32; i++) {
        if (!cards[i].valid) continue;
        if (first < 0) first = i;
        valid++;
    }
    char detail[256] = "";
    for (int i = 0, at = 0; i < 32 && at < 200; i++)
        if (cards[i].valid)
            at += snprintf(detail + at, sizeof detail - at, "%snvidia%u(id %#x)", at ? "," : "",
                           cards[i].minor_number, cards[i].gpu_id);
    printf("cards: %d\n", valid);
    report("CARD_INFO", ret, detail, ret == 0 && valid > 0);
    if (first < 0) return 1;

    uint32_t client = 0, status;
    uint8_t root_params[128] = {0};
    ret = alloc(ctl, 0, 0, &client, NV01_ROOT_CLIENT, root_params, &status);
    snprintf(detail, sizeof detail, "client %#x status %#x", client, status);
    report("RM_ALLOC NV01_ROOT_CLIENT", ret, detail, ret == 0 && status == NV_OK && client != 0);

    uint32_t probed[96];
    memset(probed, 0xff, sizeof probed);
    expect_control(ctl, client, client, GPU_GET_PROBED_IDS, "GPU_GET_PROBED_IDS", probed,
                   probed_ids_size(), NV_OK);
    int nprobed = 0;
    while (nprobed < 32 && probed[nprobed] != 0xffffffff) nprobed++;
    printf("probed: %d\n", nprobed);
    uint32_t attach[33];
    memset(attach, 0xff, sizeof attach);
    memcpy(attach, probed, 32 * 4);
    expect_control(ctl, client, client, GPU_ATTACH_IDS, "GPU_ATTACH_IDS", attach, 132, NV_OK);
    uint32_t attached[32];
    expect_control(ctl, client, client, GPU_GET_ATTACHED_IDS, "GPU_GET_ATTACHED_IDS", attached,
                   128, NV_OK);
    uint32_t id_info[8] = {cards[first].gpu_id};
    expect_control(ctl, client, client, GPU_GET_ID_INFO_V2, "GPU_GET_ID_INFO_V2", id_info, 32,
                   NV_OK);

    char path[32];
    snprintf(path, sizeof path, "/dev/nvidia%u", cards[first].minor_number);
    int gpu = open(path, O_RDWR | O_CLOEXEC);
    report(path, gpu, "", gpu >= 0);
    if (gpu < 0) return 1;
    int ctl_fd = ctl;
    ret = ioctl(gpu, NV_IOCTL(NV_ESC_REGISTER_FD, sizeof ctl_fd), &ctl_fd);
    report("REGISTER_FD", ret, "", ret == 0);

    struct nv0080_alloc device_params = {.device_id = 0};
    uint32_t device = DEVICE_HANDLE;
    ret = alloc(ctl, client, client, &device, NV01_DEVICE_0, &device_params, &status);
    snprintf(detail, sizeof detail, "status %#x", status);
    report("RM_ALLOC NV01_DEVICE_0", ret, detail, ret == 0 && status == NV_OK);
    uint32_t subdevice_params = 0, subdevice = SUBDEVICE_HANDLE;
    ret = alloc(ctl, client, device, &subdevice, NV20_SUBDEVICE_0, &subdevice_params, &status);
    snprintf(detail, sizeof detail, "status %#x", status);
    report("RM_ALLOC NV20_SUBDEVICE_0", ret, detail, ret == 0 && status == NV_OK);

    uint32_t subdevices = 0;
    expect_control(ctl, client, device, NV0080_GET_NUM_SUBDEVICES, "GPU_GET_NUM_SUBDEVICES",
                   &subdevices, 4, NV_OK);
    uint8_t classes[1024] = {0};
    expect_control(ctl, client, device, NV0080_GET_CLASSLIST_V2, "GPU_GET_CLASSLIST_V2", classes,
                   classlist_v2_size(), NV_OK);
    uint8_t name[132] = {0};
    expect_control(ctl, client, subdevice, NV2080_GET_NAME_STRING, "GPU_GET_NAME_STRING", name,
                   name_string_size(), NV_OK);
    printf("name: %s\n", (char *)name + 4);
    uint8_t gid[268] = {0};
    expect_control(ctl, client, subdevice, NV2080_GET_GID_INFO, "GPU_GET_GID_INFO", gid, 268,
                   NV_OK);
    printf("gid: %s\n", (char *)gid + 12);
    uint8_t info[564] = {0};
    uint32_t indexes = 2;
    memcpy(info, &indexes, 4);
    expect_control(ctl, client, subdevice, NV2080_GET_INFO_V2, "GPU_GET_INFO_V2", info,
                   info_v2_size(), NV_OK);

    /* Embedded pointers: three string buffers the driver fills. */
    char driver[64] = "", versions[64] = "", title[64] = "";
    struct {
        uint32_t size, pad;
        uint64_t driver, version, title;
        uint32_t changelist, official_changelist;
    } build = {64, 0, (uintptr_t)driver, (uintptr_t)versions, (uintptr_t)title, 0, 0};
    expect_control(ctl, client, client, SYSTEM_GET_BUILD_VERSION, "SYSTEM_GET_BUILD_VERSION",
                   &build, sizeof build, NV_OK);
    report("build version strings", 0, driver, strcmp(driver, version.version_string) == 0);

    int uvm = open("/dev/nvidia-uvm", O_RDWR | O_CLOEXEC);
    report("open /dev/nvidia-uvm", uvm, "", uvm >= 0);
    if (uvm >= 0) {
        struct uvm_initialize init = {0, 0xffffffff, 0};
        ret = ioctl(uvm, UVM_INITIALIZE, &init);
        report("UVM_INITIALIZE", ret, "", ret == 0 && init.rm_status == 0);
        struct uvm_pageable_mem_access pageable = {1, {0}, 0xffffffff};
        ret = ioctl(uvm, UVM_PAGEABLE_MEM_ACCESS, &pageable);
        report("UVM_PAGEABLE_MEM_ACCESS", ret, "", ret == 0 && pageable.rm_status == 0);
    }

    /* What a gated sandbox must be refused, answered as the driver answers it. */
    uint8_t scratch[3812] = {0};
    expect_control(ctl, client, subdevice, NV2080_UNKNOWN_CMD, "unknown command", scratch, 8,
                   NV_ERR_NOT_SUPPORTED);
    expect_control(ctl, client, subdevice, NV2080_GET_PIDS, "GPU_GET_PIDS (workload-only)",
                   scratch, 3812, NV_ERR_NOT_SUPPORTED);
    uint32_t unknown = 0x5c000009;
    ret = alloc(ctl, client, device, &unknown, 0xdead, scratch, &status);
    snprintf(detail, sizeof detail, "status %#x", status);
    report("RM_ALLOC unknown class", ret, detail, ret == 0 && status == NV_ERR_INVALID_CLASS);
    struct nvos54 short_control = {0};
    ret = ioctl(ctl, NV_IOCTL(NV_ESC_RM_CONTROL, 24), &short_control);
    report("RM_CONTROL with a 24-byte argument", ret, "", ret < 0 && errno == EINVAL);
    ret = ioctl(gpu, NV_IOCTL(NV_ESC_RM_CONTROL, sizeof(struct nvos54)), &short_control);
    report("RM_CONTROL on a GPU file", ret, "", ret < 0 && errno == EINVAL);
    int other = open("/dev/nvidiactl", O_RDWR | O_CLOEXEC);
    expect_control(other, client, subdevice, NV0080_GET_NUM_SUBDEVICES,
                   "through another control file", &subdevices, 4, NV_ERR_INVALID_CLIENT);
    close(other);

    struct nvos00 free_params = {.h_root = client, .h_object_parent = 0, .h_object_old = client};
    ret = ioctl(ctl, NV_IOCTL(NV_ESC_RM_FREE, sizeof free_params), &free_params);
    snprintf(detail, sizeof detail, "status %#x", free_params.status);
    report("RM_FREE client", ret, detail, ret == 0 && free_params.status == NV_OK);
    return failures ? 1 : 0;
}

/* The race: the command flips between an allowed one and GPU_GET_PIDS while calls are in
 * flight; a gate that acts on its own copy never lets GET_PIDS reach the driver in enforce. */
static volatile struct nvos54 racing;
static volatile int racing_done;

static void *flipper(void *unused) {
    (void)unused;
    while (!racing_done) {
        racing.cmd = NV2080_GET_PIDS;
        for (volatile int i = 0; i < 50; i++) {}
        racing.cmd = NV2080_GET_INFO_V2;
        for (volatile int i = 0; i < 50; i++) {}
    }
    return NULL;
}

static int race(long rounds) {
    int ctl = open("/dev/nvidiactl", O_RDWR | O_CLOEXEC);
    struct nv_rm_api_version version = {.cmd = '2'};
    if (ctl < 0 || ioctl(ctl, NV_IOCTL(NV_ESC_CHECK_VERSION_STR, sizeof version), &version) < 0)
        return 1;
    sscanf(version.version_string, "%d.%d", &major_version, &minor_version);
    struct nv_card_info cards[32] = {0};
    ioctl(ctl, NV_IOCTL(NV_ESC_CARD_INFO, sizeof cards), cards);
    uint32_t client = 0, status, probed[96];
    uint8_t root_params[128] = {0};
    alloc(ctl, 0, 0, &client, NV01_ROOT_CLIENT, root_params, &status);
    memset(probed, 0xff, sizeof probed);
    control(ctl, client, client, GPU_GET_PROBED_IDS, probed, probed_ids_size(), &status);
    uint32_t attach[33];
    memset(attach, 0xff, sizeof attach);
    memcpy(attach, probed, 32 * 4);
    control(ctl, client, client, GPU_ATTACH_IDS, attach, 132, &status);
    struct nv0080_alloc device_params = {0};
    uint32_t device = DEVICE_HANDLE, subdevice = SUBDEVICE_HANDLE, sub_params = 0;
    alloc(ctl, client, client, &device, NV01_DEVICE_0, &device_params, &status);
    alloc(ctl, client, device, &subdevice, NV20_SUBDEVICE_0, &sub_params, &status);
    if (status != NV_OK) {
        report("race set-up", -1, "", 0);
        return 1;
    }
    static uint8_t params[4096];
    racing.h_client = client;
    racing.h_object = subdevice;
    racing.params = (uintptr_t)params;
    racing.params_size = info_v2_size();
    pthread_t thread;
    pthread_create(&thread, NULL, flipper, NULL);
    long refused = 0, answered = 0, failed = 0;
    for (long i = 0; i < rounds; i++) {
        racing.status = 0xffffffff;
        long ret = ioctl(ctl, NV_IOCTL(NV_ESC_RM_CONTROL, sizeof(struct nvos54)), (void *)&racing);
        if (ret < 0) failed++;
        else if (racing.status == NV_ERR_NOT_SUPPORTED) refused++;
        else answered++;
    }
    racing_done = 1;
    pthread_join(thread, NULL);
    printf("race: %ld calls, %ld refused as GPU_GET_PIDS, %ld answered, %ld failed\n", rounds,
           refused, answered, failed);
    return failed ? 1 : 0;
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Per-call cost: an emulated RM_CONTROL and an RM_FREE the kernel lets through. */
static int bench(long rounds) {
    int ctl = open("/dev/nvidiactl", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        report("open /dev/nvidiactl", ctl, "", 0);
        return 1;
    }
    uint32_t client = 0, status, ids[32];
    uint8_t root_params[128] = {0};
    if (alloc(ctl, 0, 0, &client, NV01_ROOT_CLIENT, root_params, &status) < 0 || status) {
        report("RM_ALLOC NV01_ROOT_CLIENT", -1, "", 0);
        return 1;
    }
    double start = now_ns();
    for (long i = 0; i < rounds; i++)
        control(ctl, client, client, GPU_GET_ATTACHED_IDS, ids, sizeof ids, &status);
    double control_ns = (now_ns() - start) / rounds;
    struct nvos00 gone = {.h_root = client, .h_object_parent = client, .h_object_old = 0x5c00dead};
    start = now_ns();
    for (long i = 0; i < rounds; i++)
        ioctl(ctl, NV_IOCTL(NV_ESC_RM_FREE, sizeof gone), &gone);
    double free_ns = (now_ns() - start) / rounds;
    printf("bench: RM_CONTROL %.0f ns, RM_FREE %.0f ns per call (%ld calls each)\n", control_ns,
           free_ns, rounds);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "startup") == 0) return startup();
    if (argc >= 3 && strcmp(argv[1], "race") == 0) return race(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "bench") == 0) return bench(atol(argv[2]));
    fprintf(stderr, "usage: nvidia-probe startup | race N | bench N\n");
    return 2;
}
