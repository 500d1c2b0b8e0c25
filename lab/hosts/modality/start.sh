# lab modality: storage SCP on 11112 presenting an old DCMTK identity (pynetdicom)
python3 -u /usr/local/lib/lab/modality_scp.py >>/var/log/lab/modality.log 2>&1 &
