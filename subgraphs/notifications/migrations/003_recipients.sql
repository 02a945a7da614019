-- Where each user is emailed, learnt from UserSignedUp (event-carried state): an order event that
-- carries no email (its saga never learnt it, e.g. the users service was down past the saga's
-- deadline) is still addressed. A user unknown here gets no order notifications (nobody to send
-- them to) instead of a dead-lettered event.
CREATE TABLE recipients (
  user_id uuid PRIMARY KEY,
  email text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
