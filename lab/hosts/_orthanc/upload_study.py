"""lab pacs-web, pacs-web-sec (shared layer `orthanc`): store one FAKE study (Secondary Capture) through Orthanc's REST API at start.

argv: user password [https].  The patient is fake (FAKEPATIENT^ORTHANC); nothing real is ever stored in the lab.
"""

import base64
import io
import ssl
import sys
import time
import urllib.request

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
ds.PatientName, ds.PatientID, ds.PatientBirthDate = "FAKEPATIENT^ORTHANC", "LAB-ORTHANC-0001", "19600229"
ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
ds.StudyDate, ds.Modality, ds.AccessionNumber = "20240101", "OT", "ACC-LAB-1"
out = io.BytesIO()
ds.save_as(out, enforce_file_format=True)
https = sys.argv[3:] == ["https"]
# the host's own Orthanc on localhost: the certificate names the host's lab address, not 127.0.0.1
context = ssl._create_unverified_context() if https else None
url = f"{'https' if https else 'http'}://127.0.0.1:8042/instances"
auth = "Basic " + base64.b64encode(f"{sys.argv[1]}:{sys.argv[2]}".encode()).decode()
for _ in range(150):       # Orthanc needs a few seconds to open its index
    try:
        req = urllib.request.Request(url, data=out.getvalue(), method="POST",
                                     headers={"Authorization": auth, "Content-Type": "application/dicom"})
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            r.read()
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("lab: Orthanc did not accept the fake study")
