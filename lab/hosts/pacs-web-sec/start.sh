# lab pacs-web-sec: the PACS web twin: Orthanc on 8042 with a strong account and one FAKE study
mkdir -p /var/lib/orthanc/lab && chown -R orthanc:orthanc /var/lib/orthanc/lab
runuser -u orthanc -- Orthanc /etc/orthanc/lab.json >>/var/log/lab/orthanc.log 2>&1 &
python3 /usr/local/lib/lab/upload_study.py 'pacsadmin' 'Lab#Pacs-Web-2024-locked' >>/var/log/lab/orthanc-upload.log 2>&1
