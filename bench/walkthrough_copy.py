"""The walkthrough's CopyBlobsFromDifferentStorage, with the official Python storage SDK.

One blob at a time: start a server-side copy from a SAS URL, then fetch the destination's
properties and, while the copy is pending, sleep 1 s and fetch again. Zero-length blobs are
skipped, as the walkthrough does.

usage: walkthrough_copy.py SRC_CONN SRC_CONTAINER DST_CONN DST_CONTAINER
"""
import sys
import time
from datetime import datetime, timedelta, timezone

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas


def main():
    src_conn, src_container, dst_conn, dst_container = sys.argv[1:5]
    src = BlobServiceClient.from_connection_string(src_conn)
    dst = BlobServiceClient.from_connection_string(dst_conn)
    source = src.get_container_client(src_container)
    target = dst.get_container_client(dst_container)
    try:
        target.create_container()
    except Exception:
        pass
    sas = generate_container_sas(
        src.account_name,
        src_container,
        account_key=src.credential.account_key,
        permission=ContainerSasPermissions(read=True, write=True),
        expiry=datetime.now(timezone.utc) + timedelta(days=1),
    )
    n = 0
    for blob in source.list_blobs():
        if blob.size > 0:
            url = f"{source.get_blob_client(blob.name).url}?{sas}"
            dest = target.get_blob_client(blob.name)
            dest.start_copy_from_url(url)
            while True:
                props = dest.get_blob_properties()
                if props.copy.status != "pending":
                    break
                time.sleep(1)
        n += 1
    print(f"copied {n}")


if __name__ == "__main__":
    main()
