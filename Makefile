# ztunnel-c build. `make` builds the agent and the CNI plugin; `make test` and `make demo`
# install dependencies and build first, so a fresh machine needs only those two commands.
CC      ?= cc
BUILD   := build
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -Iinclude \
	   -I$(BUILD)/gen -I$(BUILD)/bpf -Ibpf -D_GNU_SOURCE
LIBS    := -luring -lssl -lcrypto -lnghttp2 -lnftnl -lmnl -lyaml -lprotobuf-c -lbpf -lldns -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# proto/*.proto (our own files with upstream's packages and field numbers) -> protobuf-c sources
PROTO_SRC := $(sort $(wildcard proto/*.proto))
GEN_C     := $(PROTO_SRC:proto/%.proto=$(BUILD)/gen/%.pb-c.c)
GEN_H     := $(GEN_C:.c=.h)
GEN_OBJ   := $(GEN_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
GEN_SAN   := $(GEN_C:$(BUILD)/gen/%.c=$(BUILD)/san/gen/%.o)

# bpf/<hook>.bpf.c -> build/bpf/<hook>.skel.h: CO-RE against the running kernel's BTF, compiled
# with clang -target bpf, skeleton by bpftool; agent/redirect/ebpf.c loads it with libbpf.
BPF_SRC   := $(sort $(wildcard bpf/*.bpf.c))
BPF_SKEL  := $(BPF_SRC:bpf/%.bpf.c=$(BUILD)/bpf/%.skel.h)

AGENT_SRC := $(sort $(wildcard agent/*/*.c))
AGENT_OBJ := $(AGENT_SRC:%.c=$(BUILD)/obj/%.o) $(GEN_OBJ)
MAIN_OBJ  := $(BUILD)/obj/agent/main.o
SAN_OBJ   := $(AGENT_SRC:%.c=$(BUILD)/san/%.o) $(GEN_SAN)
UNIT_SRC  := $(sort $(wildcard tests/unit/*_test.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)

DEB_PKGS := build-essential pkg-config liburing-dev libssl-dev libnghttp2-dev libmnl-dev \
	libnftnl-dev libyaml-dev libjansson-dev iproute2 nftables iperf3 stunnel4 socat curl tcpdump \
	python3-h2 python3-yaml openssl procps netcat-openbsd util-linux iputils-ping golang-go \
	golang-golang-x-net-dev libprotobuf-c-dev protobuf-c-compiler python3-grpcio \
	python3-grpc-tools python3-protobuf clang libclang-rt-14-dev llvm libbpf-dev bpftool \
	haproxy golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev golang-gopkg-yaml.v3-dev \
	libldns-dev dnsutils dnsmasq-base dnsperf

# the image tag: the version the agent reports (istio_build)
VERSION    := $(shell sed -n 's/^\#define ZTUNNEL_VERSION "\(.*\)"/\1/p' agent/metrics/render.c)
IMAGE_PKGS := mmdebstrap umoci runc python3

CNI_LIB    := $(filter-out cni/ztunnel-cni.c,$(sort $(wildcard cni/*.c)))
HEADERS    := $(wildcard include/ztunnel/*.h agent/*/*.h cni/*.h)

# libFuzzer targets: tests/fuzz/<name>_fuzz.c -> build/fuzz/<name>, built with clang against an
# archive of the agent and the CNI plugin's library compiled for fuzzing (coverage, ASan, UBSan).
# A target may also #include the .c files it tests (to reach statics): the archive then supplies
# only what they leave out. tests/fuzz/run.sh runs one on a copy of tests/fuzz/corpus/<name>/.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Iinclude -Icni \
	      -I$(BUILD)/gen -I$(BUILD)/bpf -Ibpf -D_GNU_SOURCE -fno-omit-frame-pointer \
	      -fsanitize=address,undefined \
	      -fno-sanitize-recover=undefined
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/*_fuzz.c))
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%_fuzz.c=$(BUILD)/fuzz/%)
FUZZ_OBJ   := $(AGENT_SRC:%.c=$(BUILD)/fuzz-obj/%.o) $(CNI_LIB:%.c=$(BUILD)/fuzz-obj/%.o) \
	      $(GEN_C:$(BUILD)/gen/%.c=$(BUILD)/fuzz-obj/gen/%.o)
FUZZ_LIB   := $(BUILD)/fuzz-obj/libztunnel.a

.PHONY: all asan deps image-deps image test-image test demo bench unit fuzz clean check stress
.DEFAULT_GOAL := all

$(BUILD)/bpf/vmlinux.h:
	@mkdir -p $(dir $@)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h bpf/lib/*.h) $(BUILD)/bpf/vmlinux.h
	@echo "  BPF     $<"
	@clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -I$(BUILD)/bpf -Ibpf -c $< -o $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@bpftool gen skeleton $< name zt_$* > $@.tmp && mv $@.tmp $@

# the loader embeds the programs: it is rebuilt when they change
$(BUILD)/obj/agent/redirect/ebpf.o $(BUILD)/san/agent/redirect/ebpf.o \
$(BUILD)/fuzz-obj/agent/redirect/ebpf.o $(BUILD)/unit/redirect_test \
$(BUILD)/obj/agent/redirect/sockmap.o $(BUILD)/san/agent/redirect/sockmap.o \
$(BUILD)/fuzz-obj/agent/redirect/sockmap.o \
$(BUILD)/obj/agent/proxy/reuseport.o $(BUILD)/san/agent/proxy/reuseport.o \
$(BUILD)/fuzz-obj/agent/proxy/reuseport.o: $(BPF_SKEL)
all: $(BUILD)/ztunnel $(BUILD)/ztunnel-cni $(BUILD)/tools/bpf_links

# small programs the tests use to look at the kernel
$(BUILD)/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	@$(CC) $(CFLAGS) -o $@ $< -lbpf

# installs the Debian packages named in $(1) that are missing
define install_pkgs
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_pkgs,$(DEB_PKGS))

image-deps:
	$(call install_pkgs,$(IMAGE_PKGS))

# The OCI image (image/build.sh): Debian packages only, no registry image; then the e2e mesh and
# policy tests with node1's agent run from it under runc (tests/image/run.sh).
image: deps image-deps
	$(MAKE) all
	bash image/build.sh $(VERSION)

test-image: image
	bash tests/image/run.sh $(VERSION)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto $(PROTO_SRC)
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-error -c $< -o $@

$(BUILD)/san/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-error -O1 $(SAN) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(wildcard include/ztunnel/*.h agent/*/*.h) | $(GEN_H) $(BPF_SKEL)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c $(wildcard include/ztunnel/*.h agent/*/*.h) | $(GEN_H) $(BPF_SKEL)
	@mkdir -p $(dir $@)
	@echo "  CC [san] $<"
	@$(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $@

$(BUILD)/ztunnel: $(AGENT_OBJ) $(MAIN_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# The agent under AddressSanitizer and UBSan, for tests that hunt memory bugs (ZT=build/ztunnel-asan).
$(BUILD)/ztunnel-asan: $(SAN_OBJ) $(BUILD)/san/agent/main.o
	$(CC) $(CFLAGS) -O1 $(SAN) -o $@ $^ $(LIBS)

$(BUILD)/ztunnel-cni: cni/ztunnel-cni.c $(CNI_LIB) $(BUILD)/obj/agent/inpod/zds.o \
		       $(BUILD)/obj/agent/state/text.o $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.o,$^) -ljansson

# Unit tests run under AddressSanitizer and UndefinedBehaviorSanitizer. A test whose first line is
# "// unit-standalone" #includes the .c files under test (to reach their statics) and is linked
# alone; the others link against every agent object.
STANDALONE := $(shell grep -l '^// unit-standalone' $(UNIT_SRC) 2>/dev/null)
STANDALONE_BIN := $(STANDALONE:tests/unit/%.c=$(BUILD)/unit/%)
LINKED_BIN := $(filter-out $(STANDALONE_BIN),$(UNIT_BIN))

$(STANDALONE_BIN): $(BUILD)/unit/%: tests/unit/%.c $(AGENT_SRC) $(wildcard include/ztunnel/*.h agent/*/*.h) | $(GEN_H) $(BPF_SKEL)
	@mkdir -p $(dir $@)
	@echo "  TEST    $<"
	@$(CC) $(CFLAGS) -O1 $(SAN) -o $@ $< $(LIBS)

# a standalone test may load the programs (bpf_*_test): relinked when they change
$(STANDALONE_BIN): $(BPF_SKEL)

$(LINKED_BIN): $(BUILD)/unit/%: tests/unit/%.c $(SAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST    $<"
	@$(CC) $(CFLAGS) -O1 $(SAN) -o $@ $< $(SAN_OBJ) $(LIBS)

unit: $(UNIT_BIN)

$(BUILD)/fuzz-obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  CC [fuzz] $<"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -Wno-error -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz-obj/%.o: %.c $(HEADERS) | $(GEN_H) $(BPF_SKEL)
	@mkdir -p $(dir $@)
	@echo "  CC [fuzz] $<"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/fuzz/%: tests/fuzz/%_fuzz.c $(wildcard tests/fuzz/*.h) $(HEADERS) $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $<"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(LIBS) -ljansson

fuzz: $(FUZZ_BIN)

asan: $(BUILD)/ztunnel-asan

test: deps
	$(MAKE) all unit fuzz
	bash tests/run.sh

demo: deps
	$(MAKE) all
	bash tests/e2e/demo.sh

bench: deps
	$(MAKE) all
	bash tests/bench/bench.sh

# slow, not in make test: 10,000 held tunnelled connections through agents built with ASan/LSan
stress: deps
	$(MAKE) all asan
	bash tests/stress/test_hold_10k.sh

check:
	cppcheck --quiet --error-exitcode=1 -Iinclude agent cni

clean:
	rm -rf $(BUILD)
