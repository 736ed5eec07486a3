# Weir's image: the static binary and CA certificates, nothing else. No base image is pulled; build it
# with `make docker`, which prepares the context (bin/docker) from a CGO-free build.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY weir /weir
COPY --chown=65534:65534 data /data
USER 65534:65534
VOLUME /data
EXPOSE 19291 10902 10901
ENTRYPOINT ["/weir"]
CMD ["receive", "--tsdb.path=/data"]
