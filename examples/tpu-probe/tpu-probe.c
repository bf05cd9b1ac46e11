/*
 * tpu-probe: a stand-in for libtpu's device set-up, for trying the ioctl gate.
 *
 *   tpu-probe vfio        the VFIO sequence of a TPU v5e/v5p/v6e/7x host, then forbidden calls
 *   tpu-probe accel       the gasket sequence of a TPU v4/v4 lite host, then forbidden calls
 *   tpu-probe race        REGISTER_INTERRUPT while another thread rewrites its offset
 *   tpu-probe failclosed  a gasket call, "ready", wait for SIGUSR1, the same call again, which
 *                         must fail with ENOSYS (the supervisor was killed), or give EXPECT
 *   tpu-probe compat      a gasket ioctl through the i386 and x32 entry points (x86_64)
 *
 * Each call prints one line, "<call> -> <result> [<verdict>]", where result is the return value
 * or the errno's name and verdict says whether it is what a gated sandbox must answer
 * ("ok") or not ("UNEXPECTED"). The exit status is 0 when every call was as expected.
 *
 * Build: cc -static -O2 -pthread -o tpu-probe tpu-probe.c  (scripts/setup does it)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The gasket ABI of tensorflow/tpu's driver (not in the kernel's uapi headers). */
struct gasket_interrupt_eventfd { uint64_t interrupt, event_fd; };
struct gasket_page_table_ioctl { uint64_t page_table_index, size, host_address, device_address; };
struct gasket_interrupt_mapping { uint64_t interrupt, event_fd, bar_index, reg_offset; };
struct gasket_page_table_ioctl_dmabuf { uint64_t page_table_index, device_address; int dmabuf_fd; };

#define GASKET_IOCTL_BASE 0xDC
#define GASKET_IOCTL_SET_EVENTFD _IOW(GASKET_IOCTL_BASE, 1, struct gasket_interrupt_eventfd)
#define GASKET_IOCTL_NUMBER_PAGE_TABLES _IOR(GASKET_IOCTL_BASE, 4, uint64_t)
#define GASKET_IOCTL_PAGE_TABLE_SIZE _IOWR(GASKET_IOCTL_BASE, 5, struct gasket_page_table_ioctl)
#define GASKET_IOCTL_PARTITION_PAGE_TABLE _IOW(GASKET_IOCTL_BASE, 7, struct gasket_page_table_ioctl)
#define GASKET_IOCTL_MAP_BUFFER _IOW(GASKET_IOCTL_BASE, 8, struct gasket_page_table_ioctl)
#define GASKET_IOCTL_UNMAP_BUFFER _IOW(GASKET_IOCTL_BASE, 9, struct gasket_page_table_ioctl)
#define GASKET_IOCTL_CLEAR_INTERRUPT_COUNTS _IO(GASKET_IOCTL_BASE, 10)
#define GASKET_IOCTL_REGISTER_INTERRUPT _IOW(GASKET_IOCTL_BASE, 11, struct gasket_interrupt_mapping)
#define GASKET_IOCTL_UNREGISTER_INTERRUPT _IOW(GASKET_IOCTL_BASE, 12, uint64_t)
#define GASKET_IOCTL_MAP_DMA_BUF _IOW(GASKET_IOCTL_BASE, 13, struct gasket_page_table_ioctl_dmabuf)

#define GASKET_BAR2_BASE 0x10000000UL
/* In both the TPU v4 and the v4 lite interrupt lists. */
#define GOOD_INTERRUPT_OFFSET 0x4720000UL
#define BAD_INTERRUPT_OFFSET 0x1000UL
#define GOOGLE_VENDOR "0x1ae0"
#define TWO_MIB (2UL << 20)

static int unexpected;

/* "ok" when `ret` (with errno) is what `want` says: ">=0" for success, or an errno name. */
static long report(const char *call, long ret, const char *want)
{
	int err = errno;
	char got[64];
	int ok;
	if (ret < 0) {
		const char *name = strerrorname_np(err);
		snprintf(got, sizeof(got), "%s", name ? name : "E?");
		ok = strcmp(want, got) == 0;
	} else {
		snprintf(got, sizeof(got), "%ld", ret);
		ok = strcmp(want, ">=0") == 0 || strcmp(want, got) == 0;
	}
	printf("%s -> %s [%s]\n", call, got, ok ? "ok" : "UNEXPECTED");
	fflush(stdout);
	if (!ok)
		unexpected++;
	errno = err;
	return ret;
}

static int first_tpu(char *bdf, size_t len, int *group)
{
	DIR *dir = opendir("/sys/bus/pci/devices");
	struct dirent *entry;
	if (!dir)
		return -1;
	while ((entry = readdir(dir))) {
		char path[512], vendor[16] = "", link[512];
		FILE *f;
		ssize_t n;
		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", entry->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (!fgets(vendor, sizeof(vendor), f))
			vendor[0] = 0;
		fclose(f);
		if (strncmp(vendor, GOOGLE_VENDOR, strlen(GOOGLE_VENDOR)) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", entry->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		snprintf(bdf, len, "%s", entry->d_name);
		*group = atoi(basename(link));
		closedir(dir);
		return 0;
	}
	closedir(dir);
	return -1;
}

static int vfio(void)
{
	char bdf[256], path[64], label[320];
	int group_number, container, group, device, i;
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfio_region_info bar0 = { 0 };

	if (first_tpu(bdf, sizeof(bdf), &group_number) < 0) {
		printf("no TPU (vendor %s) under /sys/bus/pci/devices\n", GOOGLE_VENDOR);
		return 1;
	}
	printf("tpu %s iommu_group %d\n", bdf, group_number);
	container = report("open(/dev/vfio/vfio)", open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC), ">=0");
	report("VFIO_GET_API_VERSION", ioctl(container, VFIO_GET_API_VERSION), "0");
	report("VFIO_CHECK_EXTENSION(TYPE1v2)", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU), "1");
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_number);
	snprintf(label, sizeof(label), "open(%s)", path);
	group = report(label, open(path, O_RDWR | O_CLOEXEC), ">=0");
	snprintf(label, sizeof(label), "open(%s) again", path);
	report(label, open(path, O_RDWR | O_CLOEXEC), "EBUSY");
	report("VFIO_GROUP_GET_STATUS", ioctl(group, VFIO_GROUP_GET_STATUS, &status), "0");
	report("VFIO_GROUP_SET_CONTAINER", ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), "0");
	report("VFIO_SET_IOMMU(TYPE1v2)", ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), "0");
	snprintf(label, sizeof(label), "VFIO_GROUP_GET_DEVICE_FD(%s)", bdf);
	device = report(label, ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf), ">=0");
	report("VFIO_DEVICE_GET_INFO", ioctl(device, VFIO_DEVICE_GET_INFO, &info), "0");
	printf("  flags %#x regions %u irqs %u\n", info.flags, info.num_regions, info.num_irqs);
	for (i = 0; i < 9; i++) {
		struct vfio_region_info region = { .argsz = sizeof(region), .index = i };
		snprintf(label, sizeof(label), "VFIO_DEVICE_GET_REGION_INFO(%d)", i);
		report(label, ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &region), "0");
		printf("  size %#llx offset %#llx flags %#x\n", (unsigned long long)region.size,
		       (unsigned long long)region.offset, region.flags);
		if (i == 0)
			bar0 = region;
	}
	if (bar0.size && (bar0.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		size_t len = bar0.size < TWO_MIB ? bar0.size : TWO_MIB;
		volatile uint32_t *bar = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, device, bar0.offset);
		report("mmap(BAR0)", bar == MAP_FAILED ? -1 : 0, "0");
		if (bar != MAP_FAILED) {
			bar[1] = 0xfeedface;
			report("BAR0 write then read", bar[1] == 0xfeedface ? 0 : -1, "0");
			munmap((void *)bar, len);
		}
	}
	{
		struct vfio_region_info config = { .argsz = sizeof(config), .index = VFIO_PCI_CONFIG_REGION_INDEX };
		uint16_t vendor = 0;
		ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &config);
		report("pread(config, vendor)", pread(device, &vendor, 2, config.offset) == 2 ? vendor : -1, "6880");
	}
	struct vfio_irq_info irq = { .argsz = sizeof(irq), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	report("VFIO_DEVICE_GET_IRQ_INFO(MSIX)", ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &irq), "0");
	{
		unsigned count = irq.count < 4 ? irq.count : 4;
		size_t size = sizeof(struct vfio_irq_set) + count * sizeof(int32_t);
		struct vfio_irq_set *set = calloc(1, size);
		int32_t *fds = (int32_t *)set->data;
		for (unsigned n = 0; n < count; n++)
			fds[n] = eventfd(0, EFD_CLOEXEC);
		set->argsz = size;
		set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		set->index = VFIO_PCI_MSIX_IRQ_INDEX;
		set->count = count;
		snprintf(label, sizeof(label), "VFIO_DEVICE_SET_IRQS(MSIX, %u eventfds)", count);
		report(label, ioctl(device, VFIO_DEVICE_SET_IRQS, set), "0");
		free(set);
	}
	void *buffer = mmap(NULL, TWO_MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)buffer,
		.iova = 0x100000000ULL,
		.size = TWO_MIB,
	};
	report("VFIO_IOMMU_MAP_DMA(2 MiB)", ioctl(container, VFIO_IOMMU_MAP_DMA, &map), "0");
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap), .iova = map.iova, .size = TWO_MIB };
	report("VFIO_IOMMU_UNMAP_DMA", ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap), "0");
	report("VFIO_DEVICE_RESET", ioctl(device, VFIO_DEVICE_RESET), "0");

	printf("forbidden calls:\n");
	{
		struct vfio_pci_hot_reset reset = { .argsz = sizeof(reset) };
		struct vfio_device_ioeventfd ioeventfd = { .argsz = sizeof(ioeventfd) };
		struct vfio_device_feature feature = { .argsz = sizeof(feature) };
		struct vfio_iommu_type1_dma_map bad_map = map;
		struct vfio_iommu_type1_dma_unmap dirty = unmap;
		bad_map.flags |= 1u << 2; /* VFIO_DMA_MAP_FLAG_VADDR */
		dirty.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
		report("VFIO_DEVICE_PCI_HOT_RESET", ioctl(device, VFIO_DEVICE_PCI_HOT_RESET, &reset), "EPERM");
		report("VFIO_DEVICE_IOEVENTFD", ioctl(device, VFIO_DEVICE_IOEVENTFD, &ioeventfd), "EPERM");
		report("VFIO_DEVICE_FEATURE", ioctl(device, VFIO_DEVICE_FEATURE, &feature), "EPERM");
		report("VFIO_SET_IOMMU(SPAPR_TCE)", ioctl(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU), "EINVAL");
		report("VFIO_IOMMU_MAP_DMA(flag VADDR)", ioctl(container, VFIO_IOMMU_MAP_DMA, &bad_map), "EINVAL");
		report("VFIO_IOMMU_UNMAP_DMA(dirty bitmap)", ioctl(container, VFIO_IOMMU_UNMAP_DMA, &dirty), "EINVAL");
		report("unknown ioctl 0x3b7f on the container", ioctl(container, _IO(VFIO_TYPE, 0x7f)), "ENOTTY");
	}
	report("close(device)", close(device), "0");
	report("close(group)", close(group), "0");
	report("close(container)", close(container), "0");
	snprintf(label, sizeof(label), "reopen(%s)", path);
	group = report(label, open(path, O_RDWR | O_CLOEXEC), ">=0");
	close(group);
	printf("vfio: %s\n", unexpected ? "UNEXPECTED results" : "all as expected");
	return unexpected ? 1 : 0;
}

static const char *accel_path(int argc, char **argv)
{
	return argc > 2 ? argv[2] : "/dev/accel0";
}

static int open_accel(const char *path)
{
	char label[128];
	snprintf(label, sizeof(label), "open(%s)", path);
	return report(label, open(path, O_RDWR | O_CLOEXEC), ">=0");
}

static long register_interrupt(int fd, uint64_t interrupt, int event_fd, uint64_t bar, uint64_t offset)
{
	struct gasket_interrupt_mapping mapping = { interrupt, (uint64_t)event_fd, bar, offset };
	return ioctl(fd, GASKET_IOCTL_REGISTER_INTERRUPT, &mapping);
}

static int accel(int argc, char **argv)
{
	const char *path = accel_path(argc, argv);
	char label[128];
	uint64_t tables = 0;
	int fd = open_accel(path);
	report("GASKET_IOCTL_NUMBER_PAGE_TABLES", ioctl(fd, GASKET_IOCTL_NUMBER_PAGE_TABLES, &tables), "0");
	printf("  page tables %llu\n", (unsigned long long)tables);
	struct gasket_page_table_ioctl size = { 0 };
	report("GASKET_IOCTL_PAGE_TABLE_SIZE(0)", ioctl(fd, GASKET_IOCTL_PAGE_TABLE_SIZE, &size), "0");
	volatile uint32_t *bar2 = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, GASKET_BAR2_BASE);
	report("mmap(BAR2)", bar2 == MAP_FAILED ? -1 : 0, "0");
	if (bar2 != MAP_FAILED) {
		bar2[0] = 0xc0ffee;
		report("BAR2 write then read", bar2[0] == 0xc0ffee ? 0 : -1, "0");
	}
	void *buffer = mmap(NULL, TWO_MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct gasket_page_table_ioctl map = { 0, TWO_MIB, (uintptr_t)buffer, 0x1000000 };
	report("GASKET_IOCTL_MAP_BUFFER(2 MiB)", ioctl(fd, GASKET_IOCTL_MAP_BUFFER, &map), "0");
	int efd = eventfd(0, EFD_CLOEXEC);
	report("GASKET_IOCTL_REGISTER_INTERRUPT(0, bar 2, 0x4720000)",
	       register_interrupt(fd, 0, efd, 2, GOOD_INTERRUPT_OFFSET), "0");
	report("GASKET_IOCTL_UNREGISTER_INTERRUPT(0)", ioctl(fd, GASKET_IOCTL_UNREGISTER_INTERRUPT, 0UL), "0");
	report("GASKET_IOCTL_CLEAR_INTERRUPT_COUNTS", ioctl(fd, GASKET_IOCTL_CLEAR_INTERRUPT_COUNTS), "0");
	report("GASKET_IOCTL_UNMAP_BUFFER", ioctl(fd, GASKET_IOCTL_UNMAP_BUFFER, &map), "0");

	printf("forbidden calls:\n");
	{
		int pipes[2];
		struct gasket_interrupt_eventfd set = { 0, (uint64_t)efd };
		struct gasket_page_table_ioctl partition = { 0 };
		struct gasket_page_table_ioctl_dmabuf dmabuf = { 0 };
		struct gasket_page_table_ioctl second_table = map;
		second_table.page_table_index = 1;
		if (pipe2(pipes, O_CLOEXEC) < 0)
			return 1;
		report("GASKET_IOCTL_SET_EVENTFD", ioctl(fd, GASKET_IOCTL_SET_EVENTFD, &set), "EPERM");
		report("GASKET_IOCTL_PARTITION_PAGE_TABLE", ioctl(fd, GASKET_IOCTL_PARTITION_PAGE_TABLE, &partition), "EPERM");
		report("GASKET_IOCTL_MAP_DMA_BUF", ioctl(fd, GASKET_IOCTL_MAP_DMA_BUF, &dmabuf), "EPERM");
		report("GASKET_IOCTL_REGISTER_INTERRUPT(bar 0)", register_interrupt(fd, 0, efd, 0, GOOD_INTERRUPT_OFFSET), "EINVAL");
		report("GASKET_IOCTL_REGISTER_INTERRUPT(offset 0x1000)",
		       register_interrupt(fd, 0, efd, 2, BAD_INTERRUPT_OFFSET), "EINVAL");
		report("GASKET_IOCTL_REGISTER_INTERRUPT(interrupt 45)",
		       register_interrupt(fd, 45, efd, 2, GOOD_INTERRUPT_OFFSET), "EINVAL");
		report("GASKET_IOCTL_REGISTER_INTERRUPT(a pipe, not an eventfd)",
		       register_interrupt(fd, 0, pipes[0], 2, GOOD_INTERRUPT_OFFSET), "EINVAL");
		report("GASKET_IOCTL_MAP_BUFFER(page table 1)", ioctl(fd, GASKET_IOCTL_MAP_BUFFER, &second_table), "EFAULT");
		report("unknown ioctl 0x4008dc30", ioctl(fd, _IOW(GASKET_IOCTL_BASE, 0x30, uint64_t), 0UL), "EINVAL");
	}
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		int other = open(path, O_RDWR | O_CLOEXEC);
		snprintf(label, sizeof(label), "another process: GASKET_IOCTL_MAP_BUFFER");
		report(label, ioctl(other, GASKET_IOCTL_MAP_BUFFER, &map), "EPERM");
		_exit(unexpected ? 1 : 0);
	}
	int status = 0;
	waitpid(child, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		unexpected++;
	report("close", close(fd), "0");
	fd = report("reopen", open(path, O_RDWR | O_CLOEXEC), ">=0");
	close(fd);
	printf("accel: %s\n", unexpected ? "UNEXPECTED results" : "all as expected");
	return unexpected ? 1 : 0;
}

static volatile struct gasket_interrupt_mapping race_mapping;
static volatile int race_done;

static void *flip_offset(void *unused)
{
	(void)unused;
	while (!race_done) {
		race_mapping.reg_offset = BAD_INTERRUPT_OFFSET;
		race_mapping.reg_offset = GOOD_INTERRUPT_OFFSET;
	}
	return NULL;
}

static int race(int argc, char **argv)
{
	int rounds = argc > 3 ? atoi(argv[3]) : 2000, accepted = 0, refused = 0, other = 0;
	int fd = open_accel(accel_path(argc, argv));
	pthread_t flipper;
	race_mapping.interrupt = 0;
	race_mapping.event_fd = eventfd(0, EFD_CLOEXEC);
	race_mapping.bar_index = 2;
	race_mapping.reg_offset = GOOD_INTERRUPT_OFFSET;
	pthread_create(&flipper, NULL, flip_offset, NULL);
	for (int i = 0; i < rounds; i++) {
		if (ioctl(fd, GASKET_IOCTL_REGISTER_INTERRUPT, (void *)&race_mapping) == 0) {
			accepted++;
			ioctl(fd, GASKET_IOCTL_UNREGISTER_INTERRUPT, 0UL);
		} else if (errno == EINVAL) {
			refused++;
		} else {
			other++;
		}
	}
	race_done = 1;
	pthread_join(flipper, NULL);
	printf("race: %d rounds, %d accepted, %d refused (EINVAL), %d other\n", rounds, accepted, refused, other);
	return other ? 1 : 0;
}

static int failclosed(int argc, char **argv)
{
	uint64_t tables = 0;
	int pipes[2], queued = -1;
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	int fd = open_accel(accel_path(argc, argv));
	report("GASKET_IOCTL_NUMBER_PAGE_TABLES", ioctl(fd, GASKET_IOCTL_NUMBER_PAGE_TABLES, &tables), "0");
	printf("ready\n");
	fflush(stdout);
	int signal_number;
	sigwait(&usr1, &signal_number);
	report("after SIGUSR1: GASKET_IOCTL_NUMBER_PAGE_TABLES", ioctl(fd, GASKET_IOCTL_NUMBER_PAGE_TABLES, &tables),
	       argc > 3 ? argv[3] : "ENOSYS");
	if (pipe2(pipes, O_CLOEXEC) < 0)
		return 1;
	report("after SIGUSR1: FIONREAD on a pipe", ioctl(pipes[0], FIONREAD, &queued), "0");
	return unexpected ? 1 : 0;
}

static int compat(int argc, char **argv)
{
#if defined(__x86_64__)
	uint64_t tables = 0;
	long ret;
	int fd = open_accel(accel_path(argc, argv));
	report("native GASKET_IOCTL_NUMBER_PAGE_TABLES", ioctl(fd, GASKET_IOCTL_NUMBER_PAGE_TABLES, &tables), "0");
	/* i386 ioctl is syscall 54 through int 0x80; the pointer is irrelevant, the filter decides first. */
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(54L), "b"((long)fd), "c"((long)GASKET_IOCTL_NUMBER_PAGE_TABLES), "d"(0L)
			 : "memory");
	if (ret < 0) {
		errno = (int)-ret;
		ret = -1;
	}
	report("i386 (int 0x80) GASKET_IOCTL_NUMBER_PAGE_TABLES", ret, "EPERM");
	ret = syscall(0x40000000L | 16, fd, (unsigned long)GASKET_IOCTL_NUMBER_PAGE_TABLES, &tables);
	report("x32 GASKET_IOCTL_NUMBER_PAGE_TABLES", ret, "EPERM");
	return unexpected ? 1 : 0;
#else
	(void)argc;
	(void)argv;
	printf("compat: only on x86_64\n");
	return 2;
#endif
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "vfio"))
		return vfio();
	if (!strcmp(mode, "accel"))
		return accel(argc, argv);
	if (!strcmp(mode, "race"))
		return race(argc, argv);
	if (!strcmp(mode, "failclosed"))
		return failclosed(argc, argv);
	if (!strcmp(mode, "compat"))
		return compat(argc, argv);
	fprintf(stderr, "usage: %s vfio | accel [DEV] | race [DEV [ROUNDS]] | failclosed [DEV [EXPECT]] | compat [DEV]\n",
		argv[0]);
	return 2;
}
