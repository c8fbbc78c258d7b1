/* zds_fuzz: libFuzzer target for the ZDS protobuf decoders, with re-encode round trips. */
#include <stdlib.h>
#include <string.h>

#include "../../agent/inpod/zds.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whatever decodes must re-encode, and the re-encoding must decode to the same thing. */
static void round_trip_request(const struct zds_request *req)
{
	uint8_t buf[ZDS_MAX_MESSAGE];
	struct zds_request again;
	int n = zds_encode_request(req, buf, sizeof(buf));

	if (n < 0)
		abort();
	if (zds_decode_request(buf, (size_t)n, &again) != 0 ||
	    memcmp(req, &again, sizeof(again)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zds_request req;
	char error[ZDS_MAX_MESSAGE];
	uint32_t version;

	if (zds_decode_request(data, size, &req) == 0)
		round_trip_request(&req);
	if (zds_decode_ack(data, size, error, sizeof(error)) == 0) {
		uint8_t buf[ZDS_MAX_MESSAGE];
		char again[ZDS_MAX_MESSAGE];
		int n = zds_encode_ack(error, buf, sizeof(buf));

		if (n < 0 || zds_decode_ack(buf, (size_t)n, again, sizeof(again)) != 0 ||
		    strcmp(error, again) != 0)
			abort();
	}
	zds_decode_hello(data, size, &version);
	return 0;
}
