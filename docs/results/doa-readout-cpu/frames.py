"""Pooling rules on one network's frame logits: python frames.py LOGITS.f16 PREDICTIONS.csv

LOGITS.f16 is what btrain eval wrote with dump-logits.patch applied and BSIM_DUMP_LOGITS=LOGITS.f16 set
([2880, frames, 36] float16, the test grid's examples in the order of that eval's predictions.csv). Every rule
is read out by the parabola (model.doa_estimate=parabolic); MAE in degrees over all, easy (SNR >= 10 dB, T60 <=
0.6 s) and hard (SNR <= 0 dB or T60 >= 0.6 s) cells and per noise type."""
import sys

import numpy as np

L=np.fromfile(sys.argv[1],dtype=np.float16).astype(np.float32)
N=2880; C=36; T=L.size//(N*C); L=L.reshape(N,T,C)
d=np.genfromtxt(sys.argv[2],delimiter=',',names=True)  # the eval's predictions (rows in the dump's order)
az=d['azimuth_deg']; snr=d['snr_db']; t60=d['t60_s']; nt=d['noise_type']
cent=-90+(np.arange(C)+0.5)*5
def readout(S):  # parabolic on scores [N, C]
    c=S.argmax(1); i=np.arange(N)
    lo=S[i,np.clip(c-1,0,C-1)]; mid=S[i,c]; hi=S[i,np.clip(c+1,0,C-1)]
    curv=lo-2*mid+hi; sh=np.where(curv<0,0.5*(lo-hi)/np.where(curv<0,curv,-1),0)
    sh=np.where((c==0)|(c==C-1),0,np.clip(sh,-.5,.5))
    return cent[c]+sh*5
def report(name,S):
    e=np.abs(readout(S)-az); easy=(snr>=10)&(t60<=0.6); hard=(snr<=0)|(t60>=0.6)
    print('%-34s all %.2f easy %.2f hard %.2f point %.2f babble %.2f diffuse %.2f'%(name,e.mean(),e[easy].mean(),e[hard].mean(),e[nt==1].mean(),e[nt==2].mean(),e[nt==0].mean()))
print('frames',T)
ls=L-np.log(np.exp(L-L.max(2,keepdims=True)).sum(2,keepdims=True))-L.max(2,keepdims=True)  # log-softmax
P=np.exp(ls)
report('mean logits (now)',L.mean(1))
report('mean probabilities',np.log(P.mean(1)+1e-12))
for k in [25,50,100,200]:
    report('mean logits, skip first %d'%k,L[:,k:].mean(1))
conf=P.max(2)
report('logits weighted by max prob',(L*conf[...,None]).sum(1)/conf.sum(1)[:,None])
ent=-(P*ls).sum(2); w=np.log(C)-ent
report('logits weighted by log C - entropy',(L*w[...,None]).sum(1)/w.sum(1)[:,None])
report('median logits',np.median(L,1))
report('last frame',L[:,-1])
report('mean of last 100',L[:,-100:].mean(1))
# vote: histogram of per-frame argmax
votes=np.zeros((N,C)); am=L.argmax(2)
for t in range(T): votes[np.arange(N),am[:,t]]+=1
report('frame votes',np.log(votes+0.5))
for k in [1,3,10,25,50]:
    report('mean of last %d'%k,L[:,-k:].mean(1))
for t in [25,50,100,150,200,250,300,350,397]:
    report('frame %d alone'%t,L[:,t])
for tau in [25,50,100]:
    w=np.exp((np.arange(T)-T+1)/tau); report('exp weights tau %d'%tau,(L*w[None,:,None]).sum(1)/w.sum())
