-- what the labels of the logged answers came to, over the temporary table of labelled answers
-- (mine_feedback_labels): positive, negative, negative with an explicit correction, left out
-- for disagreeing feedback, decided by implicit feedback
select
    count(*) filter (where polarity = 'positive'),
    count(*) filter (where polarity = 'negative'),
    count(*) filter (where correction_text is not null),
    count(*) filter (where conflict),
    count(*) filter (where label_source = 'implicit' and not conflict)
from feedback_labelled
