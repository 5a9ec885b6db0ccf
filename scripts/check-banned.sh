#!/bin/sh
# Reject functions that invite overflows or silent parse errors (curl's
# checksrc idea).  Use snprintf, memcpy with checked lengths, strtoull with
# end-pointer and errno checks wrapped in one helper, or the rbuf reader.
set -u
cd "$(dirname "$0")/.." || exit 2

banned='strcpy|strcat|strncpy|strncat|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok|tmpnam|tempnam|mktemp|alloca|rand|srand|strerror_r|asctime|ctime|gmtime|localtime|sscanf|scanf|fscanf'
# \b before the name, an opening parenthesis after it; comments and strings
# are not parsed, so write around the names there.
hits=$(grep -n -E "(^|[^A-Za-z0-9_.>])($banned)[[:space:]]*\(" \
	$(find src include tests bench -name '*.[ch]' 2>/dev/null) 2>/dev/null)
if [ -n "$hits" ]; then
	echo "banned functions used:" >&2
	echo "$hits" >&2
	exit 1
fi
echo "banned functions: none"
